import type { BalancerCandidate, LoadBalancer } from "./load-balancer.js";

/**
 * Picks the replica with the fewest calls in flight (ties broken in turn), so a replica
 * stuck in a slow call gets no new work: the strategy to use when calls vary in length.
 */
export class LeastBusyBalancer implements LoadBalancer {
  readonly name = "least_busy" as const;
  private turn = 0;

  pick<C extends BalancerCandidate>(candidates: readonly C[]): C {
    const least = Math.min(...candidates.map((c) => c.inFlight));
    const idle = candidates.filter((c) => c.inFlight === least);
    return idle[this.turn++ % idle.length] as C;
  }
}
