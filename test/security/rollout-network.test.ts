import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { afs } from "../helpers/afs.js";
import { hasDocker, testBaseImage } from "../helpers/docker.js";
import { DOCKER_GATEWAY, HttpTestServers } from "../helpers/net-probe.js";
import type { SecuredService } from "./rollout-principals.js";
import { securedService } from "./rollout-principals.js";

describe("afs serve --default-network and catalogue network: bad values refused at start", () => {
  const dir = mkdtempSync(join(tmpdir(), "affinetes-netflags-"));
  const db = join(dir, "s.db");

  it.each([
    ["some"],
    ['{"allow":["not a host"]}'],
    ['{"allow":"10.0.0.1"}'],
    ['{"allow":["10.0.0.1"]'],
    ['{"block":[]}'],
  ])("--default-network %s exits 2 with a clear message", async (value) => {
    const res = await afs(["serve", "--port", "0", "--db", db, "--default-network", value]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^afs: --default-network/);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });

  it("a catalogue entry with a malformed network is refused, naming it", async () => {
    const envs = join(dir, "envs.json");
    writeFileSync(envs, JSON.stringify({ agent: { container_type: "docker", network: "partial" } }));
    const res = await afs(["serve", "--port", "0", "--db", db, "--environments", envs]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/agent\.network/);
  });
});

/**
 * `environment_config.network` end to end on docker: a test server on the bridge gateway
 * address, reached from a `"full"` instance and not from one under the service's
 * default `"none"` or an allowlist naming another port.
 */
describe.skipIf(!hasDocker)("rollout service: network policy reaches the docker runtime", () => {
  let service: SecuredService;
  const servers = new HttpTestServers();
  const probe = (port: number) => servers.probe(port);
  let port = 0;
  let otherPort = 0;

  beforeAll(async () => {
    port = await servers.listen();
    otherPort = await servers.listen();
    service = await securedService("--default-network", "none");
  });

  afterAll(async () => {
    await servers[Symbol.asyncDispose]();
    if (!service) return;
    const stats = (await service.as("admin", "/stats")).json as { instances: Array<{ run_id: string }> };
    for (const i of stats.instances) await service.as("admin", "/close_instance", { run_id: i.run_id });
    await service.stop();
  });

  it('"full" (asked for over the service default "none") reaches a server on the bridge gateway', async () => {
    const start = await service.as("bob", "/start_instance", {
      run_id: "net-full",
      environment_config: { container_type: "docker", image: testBaseImage, network: "full" },
    });
    expect(start.status, JSON.stringify(start.json)).toBe(200);
    const res = await service.as("bob", "/execute_command", { run_id: "net-full", cmd: probe(port) });
    expect((res.json.result as { output: string }).output.trim()).toBe("reached");
    await service.as("bob", "/close_instance", { run_id: "net-full" });
  });

  it('"none" (the service default here) reaches nothing: not the server on the bridge gateway', async () => {
    const start = await service.as("bob", "/start_instance", {
      run_id: "net-none",
      environment_config: { container_type: "docker", image: testBaseImage },
    });
    expect(start.status, JSON.stringify(start.json)).toBe(200);
    const res = await service.as("bob", "/execute_command", { run_id: "net-none", cmd: probe(port) });
    expect((res.json.result as { output: string }).output).toMatch(/unreachable/);
    expect((res.json.result as { output: string }).output).not.toMatch(/^reached$/m);
    await service.as("bob", "/close_instance", { run_id: "net-none" });
  });

  it("an allowlist reaches the allowed server and not a second one on another port", async () => {
    const start = await service.as("bob", "/start_instance", {
      run_id: "net-allow",
      environment_config: {
        container_type: "docker",
        image: testBaseImage,
        network: { allow: [`${DOCKER_GATEWAY}:${port}`] },
      },
    });
    expect(start.status, JSON.stringify(start.json)).toBe(200);
    const allowed = await service.as("bob", "/execute_command", { run_id: "net-allow", cmd: probe(port) });
    expect((allowed.json.result as { output: string }).output.trim()).toBe("reached");
    const other = await service.as("bob", "/execute_command", { run_id: "net-allow", cmd: probe(otherPort) });
    expect((other.json.result as { output: string }).output).toMatch(/unreachable/);
    await service.as("bob", "/close_instance", { run_id: "net-allow" });
  });
});
