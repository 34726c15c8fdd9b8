import { describe, expect, it } from "vitest";
import { createLoadBalancer } from "../../src/pool/load-balancer.js";
import type { BalancerCandidate, LoadBalanceStrategy } from "../../src/pool/load-balancer.js";

const candidates = (inFlight: number[]): BalancerCandidate[] =>
  inFlight.map((n, index) => ({ index, inFlight: n }));
const strategies: LoadBalanceStrategy[] = ["random", "round_robin", "least_busy"];

/** The contract every load balancer keeps. */
describe.each(strategies)("load balancer conformance: %s", (strategy) => {
  it("always picks one of the candidates it was given", () => {
    const balancer = createLoadBalancer(strategy);
    expect(balancer.name).toBe(strategy);
    const pool = candidates([0, 0, 0, 0]);
    for (let i = 0; i < 100; i++) {
      const subset = pool.filter((c) => c.index !== i % 4); // one replica out of the rotation
      expect(subset).toContain(balancer.pick(subset));
    }
  });

  it("reaches every candidate when all are equally idle", () => {
    const balancer = createLoadBalancer(strategy);
    const pool = candidates([0, 0, 0]);
    const seen = new Set<number>();
    for (let i = 0; i < 300; i++) seen.add(balancer.pick(pool).index);
    expect([...seen].sort()).toEqual([0, 1, 2]);
  });

  it("works with a single candidate", () => {
    const only = candidates([5]);
    expect(createLoadBalancer(strategy).pick(only)).toBe(only[0]);
  });
});

describe("strategy specifics", () => {
  it("round_robin takes replicas in turn and skips one out of the rotation without losing its place", () => {
    const balancer = createLoadBalancer("round_robin");
    const all = candidates([0, 0, 0]);
    expect([0, 1, 2, 3, 4, 5].map(() => balancer.pick(all).index)).toEqual([0, 1, 2, 0, 1, 2]);
    const without1 = all.filter((c) => c.index !== 1);
    expect([0, 1, 2].map(() => balancer.pick(without1).index)).toEqual([0, 2, 0]);
    expect(balancer.pick(all).index).toBe(1);
  });

  it("least_busy picks the replica with the fewest calls in flight", () => {
    const balancer = createLoadBalancer("least_busy");
    expect(balancer.pick(candidates([3, 1, 2])).index).toBe(1);
    const picks = [0, 1, 2, 3].map(() => balancer.pick(candidates([5, 0, 0])).index);
    expect(picks).not.toContain(0);
    expect(new Set(picks)).toEqual(new Set([1, 2]));
  });
});
