import { LeastBusyBalancer } from "./least-busy-balancer.js";
import { RandomBalancer } from "./random-balancer.js";
import { RoundRobinBalancer } from "./round-robin-balancer.js";

/** What a balancer sees of a replica. */
export interface BalancerCandidate {
  /** Position of the replica in the pool, stable for its life. */
  readonly index: number;
  /** Calls in flight on the replica right now. */
  readonly inFlight: number;
}

/**
 * The load-balancing extension point: picks the replica for the next call among the
 * healthy ones (never empty). Every strategy passes test/pool/balancer-conformance.ts.
 */
export interface LoadBalancer {
  readonly name: LoadBalanceStrategy;
  pick<C extends BalancerCandidate>(candidates: readonly C[]): C;
}

/** The strategies `loadEnv({ loadBalance })` accepts. */
export type LoadBalanceStrategy = "random" | "round_robin" | "least_busy";

/** The balancer for a strategy name. */
export function createLoadBalancer(strategy: LoadBalanceStrategy): LoadBalancer {
  switch (strategy) {
    case "random":
      return new RandomBalancer();
    case "round_robin":
      return new RoundRobinBalancer();
    case "least_busy":
      return new LeastBusyBalancer();
  }
}
