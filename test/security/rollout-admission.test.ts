import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasDocker, testBaseImage } from "../helpers/docker.js";
import type { SecuredService } from "./rollout-principals.js";
import { securedService } from "./rollout-principals.js";

/** The limits a rollout container of `runId` runs with, as the engine holds them. */
async function engineLimits(runId: string): Promise<{ nanoCpus: number; memory: number }> {
  const docker = new Docker();
  const [info] = await docker.listContainers({
    all: true,
    filters: { label: [`affinetes.rollout.run=${runId}`] },
  });
  if (!info) throw new Error(`no container for run ${runId}`);
  const { HostConfig } = await docker.getContainer(info.Id).inspect();
  return { nanoCpus: HostConfig.NanoCpus ?? 0, memory: HostConfig.Memory ?? 0 };
}

const GiB = 2 ** 30;

/**
 * Issue 14: "Admission is bypassed by omitting `resources` (`cpus: 0` too): such
 * instances are admitted and run without limits." Now every tracked key is charged, a
 * default when left out, and the instance runs with what it was charged.
 */
describe.skipIf(!hasDocker)("rollout service: admission that holds", () => {
  let service: SecuredService;

  beforeAll(async () => {
    service = await securedService("--max-resources", '{"instances":6,"cpus":2,"memory_gb":3,"gpus":4}');
  });

  afterAll(async () => {
    if (!service) return;
    const stats = (await service.as("admin", "/stats")).json as { instances: Array<{ run_id: string }> };
    for (const i of stats.instances) await service.as("admin", "/close_instance", { run_id: i.run_id });
    await service.stop();
  });

  it("a start that omits resources is charged the defaults and runs with them (NanoCpus, Memory)", async () => {
    for (const runId of ["no-res-1", "no-res-2"]) {
      const start = await service.as("bob", "/start_instance", {
        run_id: runId,
        environment_config: { container_type: "docker", image: testBaseImage },
      });
      expect(start.status, JSON.stringify(start.json)).toBe(200);
      expect(await engineLimits(runId)).toEqual({ nanoCpus: 1e9, memory: GiB });
    }
    expect((await service.as("bob", "/get_available_resources")).json).toEqual({
      instances: 4,
      cpus: 0,
      memory_gb: 1,
      gpus: 2,
    });
    // the bypass: a third one without resources is refused now that the cpus are taken
    const third = await service.as("bob", "/start_instance", {
      run_id: "no-res-3",
      environment_config: { container_type: "docker", image: testBaseImage },
    });
    expect(third).toMatchObject({ status: 429, json: { short: { cpus: { requested: 1, available: 0 } } } });
    // and so is the flat form
    const flat = await service.as("bob", "/start_instance", {
      run_id: "no-res-4",
      container_type: "docker",
      container_image: testBaseImage,
    });
    expect(flat.status).toBe(429);
    for (const runId of ["no-res-1", "no-res-2"])
      await service.as("bob", "/close_instance", { run_id: runId });
    expect((await service.as("bob", "/get_available_resources")).json).toEqual({
      instances: 6,
      cpus: 2,
      memory_gb: 3,
      gpus: 4,
    });
  });

  it("a zero or negative charge of a tracked key is refused (400 naming it), and nothing is admitted", async () => {
    const cases: Array<[Record<string, number>, string, RegExp]> = [
      [{ cpus: 0 }, "environment_config.resources.cpus", /cpus is at least 0.01/],
      [{ memory_gb: 0 }, "environment_config.resources.memory_gb", /memory_gb is at least 0.01/],
      [{ cpus: -1 }, "environment_config.resources.cpus", /greater than or equal to 0|>=0/],
      [{ gpus: 0 }, "environment_config.resources.gpus", /gpus is a tracked resource on this server/],
      [{ cpus: 1e-9 }, "environment_config.resources.cpus", /cpus is at least 0.01/],
    ];
    for (const [resources, field, detail] of cases) {
      const res = await service.as("bob", "/start_instance", {
        run_id: "zero",
        environment_config: { container_type: "docker", image: testBaseImage, resources },
      });
      expect(res.status, JSON.stringify(resources)).toBe(400);
      expect(res.json.field).toBe(field);
      expect(String(res.json.detail)).toMatch(detail);
    }
    const flat = await service.as("bob", "/start_instance", {
      run_id: "zero",
      container_type: "docker",
      container_image: testBaseImage,
      resources: { gpus: 0 },
    });
    expect(flat).toMatchObject({ status: 400, json: { field: "resources.gpus" } });
    expect((await service.as("admin", "/stats")).json.instances).toEqual([]);
    expect((await service.as("bob", "/get_available_resources")).json).toMatchObject({
      instances: 6,
      cpus: 2,
    });
  });

  it("what a request asks for is what the instance runs with", async () => {
    const start = await service.as("alice", "/start_instance", {
      run_id: "asked",
      environment_config: {
        container_type: "docker",
        image: testBaseImage,
        resources: { cpus: 1.5, memory_gb: 0.5, gpus: 2 },
      },
    });
    expect(start.status, JSON.stringify(start.json)).toBe(200);
    expect(await engineLimits("asked")).toEqual({ nanoCpus: 1.5e9, memory: GiB / 2 });
    await service.as("alice", "/close_instance", { run_id: "asked" });
  });

  it("--default-resources sets the charge (and the limits) of a request that leaves them out", async () => {
    const other = await securedService(
      "--max-resources",
      '{"instances":4,"cpus":2}',
      "--default-resources",
      '{"cpus":0.5,"memory_gb":0.25}',
    );
    try {
      const start = await other.as("bob", "/start_instance", {
        run_id: "defaults",
        environment_config: { container_type: "docker", image: testBaseImage },
      });
      expect(start.status, JSON.stringify(start.json)).toBe(200);
      // memory_gb is not tracked, but has a default: the instance runs with it
      expect(await engineLimits("defaults")).toEqual({ nanoCpus: 0.5e9, memory: GiB / 4 });
      expect((await other.as("bob", "/get_available_resources")).json).toEqual({ instances: 3, cpus: 1.5 });
      await other.as("bob", "/close_instance", { run_id: "defaults" });
    } finally {
      await other.stop();
    }
  });
});
