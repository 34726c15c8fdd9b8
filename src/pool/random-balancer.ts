import type { BalancerCandidate, LoadBalancer } from "./load-balancer.js";

/** Picks uniformly at random: the Python affinetes' default. */
export class RandomBalancer implements LoadBalancer {
  readonly name = "random" as const;

  pick<C extends BalancerCandidate>(candidates: readonly C[]): C {
    return candidates[Math.floor(Math.random() * candidates.length)] as C;
  }
}
