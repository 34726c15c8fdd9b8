import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PoolStartError, buildImageFromEnv, cleanupAllEnvironments, loadEnv } from "../../src/index.js";
import { hasDocker, managedContainers } from "../helpers/docker.js";
import { fixturePath } from "../helpers/paths.js";
import { until } from "../helpers/until.js";

const docker = new Docker();
const image = "affinetes-test/pool-env:latest";

describe.skipIf(!hasDocker)("replicas on docker", () => {
  beforeAll(async () => {
    await buildImageFromEnv({ envPath: fixturePath("pool-env"), imageTag: image, quiet: true });
  });

  afterAll(async () => {
    await cleanupAllEnvironments();
  });

  it("starts replicas concurrently; round_robin lands 30 calls exactly 10 per replica", async () => {
    await using env = await loadEnv({ image, replicas: 3, loadBalance: "round_robin", cpuLimit: 0.5 });
    expect(env.replicas).toBe(3);
    const hosts: string[] = [];
    for (let i = 0; i < 30; i++) hosts.push(((await env.whoami()) as { host: string }).host);
    const counts = Object.values(
      hosts.reduce<Record<string, number>>((acc, h) => ({ ...acc, [h]: (acc[h] ?? 0) + 1 }), {}),
    );
    expect(counts).toEqual([10, 10, 10]);
    const stats = env.getStats();
    expect(stats).toMatchObject({
      totalInstances: 3,
      healthyInstances: 3,
      totalRequests: 30,
      loadBalance: "round_robin",
    });
    expect(stats.instances.map((i) => i.requests)).toEqual([10, 10, 10]);
    for (const instance of stats.instances) {
      expect(instance).toMatchObject({ host: "localhost", healthy: true, inFlight: 0, failures: 0 });
      expect(instance.latencyMedianMs).toBeGreaterThan(0);
    }
    const info = await docker.getContainer(stats.instances[0]?.id ?? "").inspect();
    expect(info.HostConfig.NanoCpus).toBe(0.5e9);
  });

  it("least_busy sends new calls away from a replica stuck in a slow call", async () => {
    await using env = await loadEnv({ image, replicas: 3, loadBalance: "least_busy" });
    const stuck = env.slow({ seconds: 3 });
    await until(() => env.getStats().instances.some((i) => i.inFlight === 1), 2_000);
    const busy = env.getStats().instances.findIndex((i) => i.inFlight === 1);
    for (let i = 0; i < 12; i++) await env.add({ a: i, b: 1 });
    const requests = env.getStats().instances.map((i) => i.requests);
    expect(requests[busy]).toBe(1);
    expect(requests.reduce((a, b) => a + b, 0)).toBe(13);
    await stuck;
  });

  it("docker kill of one replica under load: calls on the others never fail; it leaves, restarts and rejoins", async () => {
    await using env = await loadEnv({ image, replicas: 3, loadBalance: "round_robin" });
    const victim = env.getStats().instances[1];
    if (!victim) throw new Error("no replica 1");
    let running = true;
    let ok = 0;
    const failures: Error[] = [];
    let sawUnhealthy = false;
    const workers = Array.from({ length: 8 }, async () => {
      while (running) {
        try {
          await env.add({ a: 1, b: 1 }, { timeoutMs: 10_000 });
          ok++;
        } catch (err) {
          failures.push(err as Error);
        }
      }
    });
    const watcher = (async () => {
      while (running) {
        if (env.getStats().instances[1]?.healthy === false) sawUnhealthy = true;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    await docker.getContainer(victim.id).kill();
    const rejoined = await until(() => sawUnhealthy && env.getStats().instances[1]?.healthy === true, 20_000);
    const servedBefore = env.getStats().instances[1]?.requests ?? 0;
    await until(() => (env.getStats().instances[1]?.requests ?? 0) > servedBefore + 5, 5_000);
    running = false;
    await Promise.all([...workers, watcher]);

    const stats = env.getStats();
    expect(sawUnhealthy).toBe(true);
    expect(rejoined).toBe(true);
    expect(stats.instances[1]?.requests).toBeGreaterThan(servedBefore + 5); // serves again
    expect(stats.instances[0]?.failures).toBe(0);
    expect(stats.instances[2]?.failures).toBe(0);
    // Every failed call was one sent to the killed replica, and said so. (Its failure
    // count may be higher: refused attempts that moved to another replica succeeded.)
    expect(failures.length).toBeLessThanOrEqual(stats.instances[1]?.failures ?? 0);
    for (const failure of failures) expect(failure.name).toBe("ConnectionError");
    expect(ok).toBeGreaterThan(100);
    expect((await docker.getContainer(victim.id).inspect()).State.Running).toBe(true); // same container, started again
  });

  it("a method past memLimit is OOM-killed; the container restarts and the next calls succeed", async () => {
    await using env = await loadEnv({ image, memLimit: "64m" });
    const id = env.instanceId;
    const crash = await env.allocate({ mb: 256 }).catch((e: unknown) => e);
    expect((crash as Error).name).toBe("ConnectionError");
    expect((crash as Error).message).toMatch(/may have run/);
    expect(await env.add({ a: 2, b: 3 }, { timeoutMs: 30_000 })).toBe(5);
    const info = await docker.getContainer(id).inspect();
    expect(info.RestartCount).toBeGreaterThanOrEqual(1);
    expect(env.instanceId).toBe(id); // not recreated
    expect(env.getStats().healthyInstances).toBe(1);
  });

  it("two environments with two replicas each, used concurrently, leave nothing behind", async () => {
    const [a, b] = await Promise.all([
      loadEnv({ image, replicas: 2, loadBalance: "round_robin" }),
      loadEnv({ image, replicas: 2, loadBalance: "least_busy" }),
    ]);
    const ids = [...a.getStats().instances, ...b.getStats().instances].map((i) => i.id);
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).add({ a: i, b: 0 })),
    );
    expect(results).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(a.getStats().totalRequests + b.getStats().totalRequests).toBe(40);
    await Promise.all([a.cleanup(), b.cleanup()]);
    const left = (await managedContainers(process.pid)).filter((c) => ids.includes(c.Id));
    expect(left).toEqual([]);
  });

  it("cleanup: false keeps every replica running; stop() removes them all", async () => {
    const env = await loadEnv({ image, replicas: 2, cleanup: false });
    const ids = env.getStats().instances.map((i) => i.id);
    await env.cleanup();
    for (const id of ids) expect((await docker.getContainer(id).inspect()).State.Running).toBe(true);
    await env.stop();
    const left = (await managedContainers(process.pid)).filter((c) => ids.includes(c.Id));
    expect(left).toEqual([]);
  });

  it("names replicas prefix-0..N, reuses them, and reports each failed replica while stopping the rest", async () => {
    const prefix = `pool-${process.pid}`;
    const first = await loadEnv({ image, replicas: 2, containerName: prefix });
    expect(first.getStats().instances.map((i) => i.name)).toEqual([`${prefix}-0`, `${prefix}-1`]);
    const again = await loadEnv({ image, replicas: 2, containerName: prefix });
    expect(again.reused).toBe(true);
    await first.stop();

    // A foreign container holds the name of replica 1: that replica fails, replica 0 is stopped.
    const foreign = await docker.createContainer({ Image: image, name: `${prefix}-1` });
    try {
      const error = await loadEnv({ image, replicas: 3, containerName: prefix }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PoolStartError);
      expect((error as PoolStartError).failures.map((f) => f.replica)).toEqual([1]);
      expect((error as Error).message).toMatch(/replica 1: .*not created by affinetes/);
      const names = (await managedContainers(process.pid)).flatMap((c) => c.Names);
      expect(names).not.toContain(`/${prefix}-0`);
      expect(names).not.toContain(`/${prefix}-2`);
    } finally {
      await foreign.remove({ force: true });
    }
  });
});
