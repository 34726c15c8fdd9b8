import type { BalancerCandidate, LoadBalancer } from "./load-balancer.js";

/**
 * Takes the replicas in turn by their pool position, so N calls over R healthy replicas
 * land N/R on each; a replica out of rotation is skipped, not counted.
 */
export class RoundRobinBalancer implements LoadBalancer {
  readonly name = "round_robin" as const;
  private last = -1;

  pick<C extends BalancerCandidate>(candidates: readonly C[]): C {
    const sorted = [...candidates].sort((a, b) => a.index - b.index);
    const next = sorted.find((c) => c.index > this.last) ?? (sorted[0] as C);
    this.last = next.index;
    return next;
  }
}
