import Docker from "dockerode";
import { afterAll, describe, expect, it } from "vitest";
import { DockerRuntime } from "../../src/runtime/docker/docker-runtime.js";
import type { Instance } from "../../src/runtime/instance.js";
import { ProcessRuntime } from "../../src/runtime/process/process-runtime.js";
import type { ProcessInstance } from "../../src/runtime/process/process-instance.js";
import { killAndWait } from "../helpers/client-process.js";
import { hasDocker, testBaseImage } from "../helpers/docker.js";
import type { Service } from "../helpers/service.js";
import { call, run, serve, serviceDb } from "../helpers/service.js";
import { until } from "../helpers/until.js";

const local = new ProcessRuntime();
const docker = hasDocker ? new DockerRuntime() : undefined;
const services: Service[] = [];

/** The running sandboxes of the service `id`, on every runtime here. */
async function sandboxesOf(id: string): Promise<Instance[]> {
  const pool = `rollout-${id}`;
  return [...(await local.find(pool)), ...(docker ? await docker.find(pool) : [])];
}

async function started(...args: string[]): Promise<Service> {
  const service = await serve(...args);
  services.push(service);
  return service;
}

afterAll(async () => {
  await Promise.all(services.map((s) => killAndWait(s.child, "SIGTERM").catch(() => undefined)));
  await docker?.close();
});

describe("the rollout service across restarts", () => {
  it("killed mid-run and restarted: live instances adopted, vanished ones released, orphans stopped, nothing leaked", async () => {
    const id = "rec-kill";
    const db = serviceDb();
    const args = ["--db", db, "--service-id", id, "--max-resources", '{"instances":5}'];
    const first = await started(...args);
    const types = ["local", ...(hasDocker ? ["docker"] : [])];
    for (const type of types) {
      const start = await call(first, "/start_instance", {
        run_id: `keep-${type}`,
        environment_config: { container_type: type, image: testBaseImage },
      });
      expect(start.status, JSON.stringify(start.json)).toBe(200);
      await run(first, `keep-${type}`, "echo kept > note.txt");
    }
    await call(first, "/start_instance", {
      run_id: "vanish",
      environment_config: { container_type: "local" },
    });
    await killAndWait(first.child, "SIGKILL");

    // While the service is down: one sandbox dies, and one appears that no record claims.
    const vanishing = (await local.find(`rollout-${id}`)).find((i) => i.name.startsWith("rollout-vanish-"));
    await vanishing?.stop();
    const orphan = await local.start({
      envName: "rollout",
      serve: false,
      keep: true,
      labels: { "affinetes.pool": `rollout-${id}` },
    });

    const second = await started(...args);
    expect(second.output()).toContain(`recovered: ${types.length} adopted, 1 released, 1 orphans stopped`);
    for (const type of types) expect(await run(second, `keep-${type}`, "cat note.txt")).toBe("kept\n");
    expect(await orphan.isRunning()).toBe(false);
    expect((await call(second, "/get_available_resources")).json).toEqual({ instances: 5 - types.length });
    const stats = await call(second, "/stats");
    expect((stats.json.instances as Array<{ run_id: string }>).map((i) => i.run_id).sort()).toEqual(
      types.map((t) => `keep-${t}`).sort(),
    );
    expect((await call(second, "/execute_command", { run_id: "vanish", cmd: "true" })).status).toBe(404);

    for (const type of types) await call(second, "/close_instance", { run_id: `keep-${type}` });
    expect(await sandboxesOf(id)).toEqual([]);
  });

  it("two services on free ports (--port 0) and their own stores never take each other's instances", async () => {
    const first = await started();
    await call(first, "/start_instance", { run_id: "mine", environment_config: { container_type: "local" } });
    const second = await started();
    expect(second.output()).not.toMatch(/recovered/);
    expect(await run(first, "mine", "echo still here")).toBe("still here\n");
    await call(first, "/close_instance", { run_id: "mine" });
  });

  it("--on-exit keep leaves instances for the next start; the default (stop) leaves nothing", async () => {
    const id = "rec-keep";
    const db = serviceDb();
    const first = await started("--db", db, "--service-id", id, "--on-exit", "keep");
    await call(first, "/start_instance", { run_id: "k", environment_config: { container_type: "local" } });
    await run(first, "k", "echo 1 > count");
    await killAndWait(first.child, "SIGTERM");
    expect(await sandboxesOf(id)).toHaveLength(1);

    const second = await started("--db", db, "--service-id", id);
    expect(await run(second, "k", "cat count")).toBe("1\n");
    await killAndWait(second.child, "SIGTERM");
    expect(await sandboxesOf(id)).toEqual([]);
  });

  it("a local instance whose sandbox died answers 410 Gone and frees its resources", async () => {
    const id = "rec-died";
    const service = await started("--service-id", id, "--max-resources", '{"instances":1}');
    await call(service, "/start_instance", { run_id: "d", environment_config: { container_type: "local" } });
    const [sandbox] = await local.find(`rollout-${id}`);
    process.kill(-(sandbox as ProcessInstance).pid, "SIGKILL");
    expect(await until(async () => !(await sandbox!.isRunning()), 5_000)).toBe(true);
    const res = await call(service, "/execute_command", { run_id: "d", cmd: "echo hi" });
    expect(res).toMatchObject({ status: 410, json: { detail: expect.stringMatching(/gone/) } });
    expect((await call(service, "/get_available_resources")).json).toEqual({ instances: 1 });
    expect((await call(service, "/execute_command", { run_id: "d", cmd: "true" })).status).toBe(410);
  });

  it.skipIf(!hasDocker)("a docker instance killed behind the service's back answers 410 Gone", async () => {
    const id = "rec-died-docker";
    const service = await started("--service-id", id);
    const start = await call(service, "/start_instance", {
      run_id: "dd",
      environment_config: { container_type: "docker", image: testBaseImage },
    });
    expect(start.status).toBe(200);
    const [sandbox] = await docker!.find(`rollout-${id}`);
    await new Docker().getContainer(sandbox!.id).kill();
    const res = await call(service, "/execute_command", { run_id: "dd", cmd: "echo hi" });
    expect(res.status, JSON.stringify(res.json)).toBe(410);
    await call(service, "/close_instance", { run_id: "dd" });
    expect(await sandboxesOf(id)).toEqual([]);
  });

  it("--idle-ttl closes forgotten instances, never one running a command", async () => {
    const id = "rec-ttl";
    const service = await started("--service-id", id, "--idle-ttl", "1");
    for (const runId of ["forgotten", "busy"]) {
      await call(service, "/start_instance", {
        run_id: runId,
        environment_config: { container_type: "local" },
      });
    }
    // The command outlasts the TTL several times over; the reaper must wait for it.
    const busy = await call(service, "/execute_command", { run_id: "busy", cmd: "sleep 3; echo done" });
    expect(busy.json.result).toMatchObject({ output: "done\n", returncode: 0 });
    expect(
      await until(
        async () => ((await call(service, "/stats")).json.instances as unknown[]).length === 0,
        10_000,
      ),
    ).toBe(true);
    const late = await call(service, "/execute_command", { run_id: "forgotten", cmd: "true" });
    expect(late).toMatchObject({ status: 410, json: { detail: expect.stringMatching(/idle/) } });
    expect(await sandboxesOf(id)).toEqual([]);
  });
});
