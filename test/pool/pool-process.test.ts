import { describe, expect, it } from "vitest";
import { loadEnv } from "../../src/index.js";
import { fixturePath } from "../helpers/paths.js";

describe("replicas on the process runtime", () => {
  it("spreads calls and fails over when a replica's server dies", async () => {
    await using env = await loadEnv({
      envPath: fixturePath("pool-env"),
      mode: "process",
      replicas: 3,
      loadBalance: "round_robin",
    });
    const pids = new Set<number>();
    for (let i = 0; i < 6; i++) pids.add(((await env.whoami()) as { pid: number }).pid);
    expect(pids.size).toBe(3);

    const victim = env.getStats().instances[0];
    process.kill(Number(victim?.id.replace("process-", "")), "SIGKILL");
    // Its exit is reported at once: it leaves the rotation, and every later call succeeds.
    for (let i = 0; i < 100 && env.getStats().instances[0]?.healthy; i++)
      await new Promise((r) => setTimeout(r, 10));
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => env.add({ a: i, b: 1 })));
    expect(results).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(env.getStats().instances[0]?.healthy).toBe(false);
    expect(env.getStats().healthyInstances).toBe(2);
  });
});
