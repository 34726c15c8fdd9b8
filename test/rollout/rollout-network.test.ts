import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { UnsupportedError } from "../../src/errors.js";
import type { InstanceOf, InstanceSpec } from "../../src/runtime/instance.js";
import type { NetworkPolicy } from "../../src/runtime/network-policy.js";
import { ProcessRuntime } from "../../src/runtime/process/process-runtime.js";
import type { Runtime } from "../../src/runtime/runtime.js";
import { EnvironmentCatalog } from "../../src/rollout/environment-catalog.js";
import { buildHttpApp } from "../../src/service/http-app.js";
import { RolloutService } from "../../src/rollout/rollout-service.js";
import type { InstanceStore } from "../../src/rollout/instance-store.js";
import { openInstanceStore } from "../../src/rollout/store/sql-instance-store.js";

/**
 * A real process runtime that records each spec it is given and, like a runtime that
 * cannot hold a policy, refuses any network but "full" when told to.
 */
class RecordingRuntime implements Runtime {
  readonly kind = "process" as const;
  readonly host = "localhost";
  readonly images = undefined;
  readonly specs: InstanceSpec[] = [];
  refuse = false;
  private readonly inner = new ProcessRuntime();

  async start<S extends InstanceSpec>(spec: S): Promise<InstanceOf<S>> {
    this.specs.push(spec);
    if (this.refuse && spec.network !== "full")
      throw new UnsupportedError(`this runtime cannot hold network ${JSON.stringify(spec.network)}`);
    return this.inner.start(spec);
  }
  ping = () => this.inner.ping();
  attach = (id: string) => this.inner.attach(id);
  list = () => this.inner.list();
  find = (pool: string) => this.inner.find(pool);
  removeAll = (pool?: string) => this.inner.removeAll(pool);
  garbageCollect = () => this.inner.garbageCollect();
  close = () => this.inner.close();
}

/**
 * `environment_config.network`, a catalogue entry's `network` and the service's default
 * reach the runtime as `spec.network`, in that order of precedence; a runtime's refusal
 * is a 400 that leaves nothing admitted.
 */
describe("rollout service: network policy plumbing", () => {
  let runtime: RecordingRuntime;
  let store: InstanceStore;
  let service: RolloutService;
  let app: FastifyInstance;

  function open(defaultNetwork?: NetworkPolicy): void {
    const file = join(mkdtempSync(join(tmpdir(), "affinetes-net-")), "envs.json");
    writeFileSync(
      file,
      JSON.stringify({
        agent: { container_type: "local", network: { allow: ["10.0.0.5:443"] } },
        plain: { container_type: "local" },
      }),
    );
    service = new RolloutService({
      store,
      limits: { instances: 10 },
      runtimes: { local: runtime, docker: runtime },
      serviceId: "net-test",
      catalog: EnvironmentCatalog.load(file),
      ...(defaultNetwork ? { defaultNetwork } : {}),
    });
    app = buildHttpApp(service);
  }

  beforeEach(async () => {
    runtime = new RecordingRuntime();
    store = await openInstanceStore(":memory:");
  });

  afterEach(async () => {
    await service.shutdown();
    await app.close();
    await store.close();
  });

  async function start(runId: string, environmentConfig: unknown) {
    const res = await app.inject({
      method: "POST",
      url: "/start_instance",
      payload: { run_id: runId, environment_config: environmentConfig },
    });
    return { status: res.statusCode, json: res.json<Record<string, unknown>>() };
  }

  it("passes the request's, else the entry's, else the service default's policy to the runtime", async () => {
    open("none");
    expect((await start("req", { container_type: "local", network: "full" })).status).toBe(200);
    expect((await start("entry", "agent")).status).toBe(200);
    expect((await start("override", { name: "agent", network: { allow: ["10.0.0.6"] } })).status).toBe(200);
    expect((await start("default", "plain")).status).toBe(200);
    expect((await start("raw", { container_type: "local" })).status).toBe(200);
    expect(runtime.specs.map((s) => s.network)).toEqual([
      "full",
      { allow: ["10.0.0.5:443"] },
      { allow: ["10.0.0.6"] },
      "none",
      "none",
    ]);
    // recorded with the run, as it was given
    expect((await store.get("entry"))?.config.network).toEqual({ allow: ["10.0.0.5:443"] });
  });

  it("defaults to full, as today, when the service sets no default", async () => {
    open();
    expect((await start("plain", { container_type: "local" })).status).toBe(200);
    expect(runtime.specs[0]?.network).toBe("full");
  });

  it("a runtime that cannot hold the policy answers 400, and nothing stays admitted", async () => {
    open();
    runtime.refuse = true;
    const refused = await start("none", { container_type: "local", network: "none" });
    expect(refused).toMatchObject({
      status: 400,
      json: { detail: expect.stringMatching(/cannot hold network/) },
    });
    expect(await store.list()).toEqual([]);
    expect(await service.availableResources()).toEqual({ instances: 10 });
    expect((await start("full", { container_type: "local", network: "full" })).status).toBe(200);
  });

  it("refuses a malformed policy in the request (400 naming the field) before the runtime sees it", async () => {
    open();
    for (const network of ["some", { allow: ["not a host"] }, { allow: ["10.0.0.1/40"] }, { block: [] }, 7]) {
      const res = await start("bad", { container_type: "local", network });
      expect(res.status, JSON.stringify(network)).toBe(400);
      expect(String(res.json.field)).toMatch(/^environment_config\.network/);
    }
    expect(runtime.specs).toEqual([]);
  });
});
