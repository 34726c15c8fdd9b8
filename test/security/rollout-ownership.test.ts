import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APIError, Client } from "../../src/index.js";
import { afs } from "../helpers/afs.js";
import { hasDocker } from "../helpers/docker.js";
import { killAndWait } from "../helpers/client-process.js";
import { call, serve } from "../helpers/service.js";
import type { SecuredService } from "./rollout-principals.js";
import { KEYS, securedService } from "./rollout-principals.js";

interface StatsDoc {
  active_instances: number;
  instances: Array<{ run_id: string; principal: string }>;
}

/**
 * The attacks of issue 14 on the rollout service's ownership, as principal B (bob) with
 * his own key against A's (alice's) runs and files, each now refused.
 */
describe("rollout service: ownership and per-key permissions", () => {
  let service: SecuredService;

  beforeAll(async () => {
    service = await securedService("--max-resources", '{"instances":20}');
  });

  afterAll(async () => {
    if (!service) return;
    // whatever a failed test left: the admin sees every run
    const stats = (await service.as("admin", "/stats")).json as unknown as StatsDoc;
    for (const i of stats.instances) await service.as("admin", "/close_instance", { run_id: i.run_id });
    await service.stop();
  });

  it("B's key cannot start a host shell (local) to read A's disk files in the state folder", async () => {
    // A's file, on a disk B is refused through the control plane (403)
    const alice = new Client({ url: service.url, apiKey: KEYS.alice });
    const bob = new Client({ url: service.url, apiKey: KEYS.bob });
    try {
      const disk = await alice.disks.create({ name: "secret-work" });
      await alice.disks.writeFile(disk.id, "s.txt", "alice's secret");
      const denied = await bob.disks.readFile(disk.id, "s.txt").catch((e: unknown) => e);
      expect(denied).toBeInstanceOf(APIError);
      expect((denied as APIError).status).toBe(403);
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
    // the attack: a local instance, then cat <state>/disks/*/s.txt
    const start = await service.as("bob", "/start_instance", {
      run_id: "bob-shell",
      environment_config: { container_type: "local" },
    });
    expect(start.status).toBe(403);
    expect(start.json.detail).toMatch(/bob may not start container_type local/);
    expect(start.json.detail).toMatch(/allow\.container_types/);
    // nothing was created: the run does not exist, its run id is free
    const read = await service.as("bob", "/execute_command", {
      run_id: "bob-shell",
      cmd: `cat ${join(service.stateDir, "disks")}/*/s.txt`,
    });
    expect(read.status).toBe(404);
    expect(((await service.as("admin", "/stats")).json as unknown as StatsDoc).instances).toEqual([]);
    // the flat form is the same request
    const flat = await service.as("bob", "/start_instance", { run_id: "bob-flat", container_type: "local" });
    expect(flat.status).toBe(403);
  });

  it("a key the operator allows local (carol) gets it; the admin too", async () => {
    for (const who of ["carol", "admin"] as const) {
      const runId = `${who}-shell`;
      const start = await service.as(who, "/start_instance", {
        run_id: runId,
        environment_config: { container_type: "local" },
      });
      expect(start.status, JSON.stringify(start.json)).toBe(200);
      const echo = await service.as(who, "/execute_command", { run_id: runId, cmd: "echo ok" });
      expect(echo.json.result).toMatchObject({ output: "ok\n", returncode: 0 });
      await service.as(who, "/close_instance", { run_id: runId });
    }
  });

  it("allow.container_types narrows a key; allow.environments hides other entries (answered as unknown)", async () => {
    const bwrap = await service.as("docker", "/start_instance", {
      run_id: "dora-bw",
      environment_config: { container_type: "bubblewrap" },
    });
    expect(bwrap.status).toBe(403);
    expect(bwrap.json.detail).toMatch(/dora may not start container_type bubblewrap/);
    const other = await service.as("docker", "/start_instance", {
      run_id: "dora-o",
      environment_config: "other",
    });
    expect(other.status).toBe(404);
    expect(other.json.detail).toMatch(/No predefined environment other: known: shell$/);
    // alice has no allow list: every entry
    const known = await service.as("alice", "/start_instance", { run_id: "a-x", environment_config: "nope" });
    expect(known.json.detail).toMatch(/known: other, shell/);
  });

  it("B cannot run commands in or close A's run: 404 / a no-op, as for a run that does not exist", async () => {
    const start = await service.as("alice", "/start_instance", {
      run_id: "alice-run",
      environment_config: { container_type: "bubblewrap" },
    });
    expect(start.status, JSON.stringify(start.json)).toBe(200);
    expect(
      (await service.as("alice", "/execute_command", { run_id: "alice-run", cmd: "echo mine > f" })).status,
    ).toBe(200);

    const exec = await service.as("bob", "/execute_command", { run_id: "alice-run", cmd: "cat f" });
    const missing = await service.as("bob", "/execute_command", { run_id: "no-such-run", cmd: "cat f" });
    expect(exec.status).toBe(404);
    // the same answer as a run id nobody has: B learns nothing
    expect(exec.json.detail).toBe(String(missing.json.detail).replace("no-such-run", "alice-run"));

    const close = await service.as("bob", "/close_instance", { run_id: "alice-run" });
    const closeMissing = await service.as("bob", "/close_instance", { run_id: "no-such-run" });
    expect(close).toEqual(closeMissing);
    // A's run is untouched
    const mine = await service.as("alice", "/execute_command", { run_id: "alice-run", cmd: "cat f" });
    expect(mine.json.result).toMatchObject({ output: "mine\n", returncode: 0 });

    // run ids stay globally unique: B cannot take A's (409), and that changes nothing
    const taken = await service.as("bob", "/start_instance", {
      run_id: "alice-run",
      environment_config: { container_type: "bubblewrap" },
    });
    expect(taken.status).toBe(409);
    expect(
      (await service.as("alice", "/execute_command", { run_id: "alice-run", cmd: "cat f" })).status,
    ).toBe(200);
    await service.as("alice", "/close_instance", { run_id: "alice-run" });
  });

  it("/stats and afs poll show a principal its own runs only; the admin sees all", async () => {
    for (const who of ["alice", "bob"] as const) {
      const res = await service.as(who, "/start_instance", {
        run_id: `${who}-stats`,
        environment_config: { container_type: "bubblewrap" },
      });
      expect(res.status, JSON.stringify(res.json)).toBe(200);
    }
    const bobs = (await service.as("bob", "/stats")).json as unknown as StatsDoc;
    expect(bobs.instances.map((i) => i.run_id)).toEqual(["bob-stats"]);
    expect(bobs.active_instances).toBe(1);
    const filtered = (await service.as("bob", "/stats?run_id=alice-stats")).json as unknown as StatsDoc;
    expect(filtered.instances).toEqual([]);
    const all = (await service.as("admin", "/stats")).json as unknown as StatsDoc;
    expect(all.instances.map((i) => [i.run_id, i.principal])).toEqual([
      ["alice-stats", "alice"],
      ["bob-stats", "bob"],
    ]);

    const poll = await afs(["poll", "--url", service.url, "--json", "--api-key", KEYS.bob]);
    expect(poll.code, poll.stderr).toBe(0);
    expect((JSON.parse(poll.stdout) as StatsDoc).instances.map((i) => i.run_id)).toEqual(["bob-stats"]);
    const listed = await afs(["poll", "--url", service.url, "--once", "--list", "--api-key", KEYS.bob]);
    expect(listed.stdout).toContain("bob-stats");
    expect(listed.stdout).not.toContain("alice-stats");
    for (const who of ["alice", "bob"] as const)
      await service.as(who, "/close_instance", { run_id: `${who}-stats` });
  });

  it("ownership lives in the store: a second service replica on the same database refuses B too", async () => {
    const start = await service.as("alice", "/start_instance", {
      run_id: "alice-replicated",
      environment_config: { container_type: "bubblewrap" },
    });
    expect(start.status, JSON.stringify(start.json)).toBe(200);
    const replica = await serve(
      "--db",
      join(service.stateDir, "service.db"),
      "--api-keys",
      join(service.stateDir, "keys.json"),
      "--environments",
      join(service.stateDir, "envs.json"),
      "--service-id",
      "replica-2",
    );
    try {
      const asBob = { authorization: `Bearer ${KEYS.bob}` };
      const asAlice = { authorization: `Bearer ${KEYS.alice}` };
      const bob = await call(replica, "/execute_command", { run_id: "alice-replicated", cmd: "id" }, asBob);
      expect(bob).toMatchObject({ status: 404, json: { detail: "Unknown run_id: alice-replicated" } });
      // A hears where her run is served; closing it here would free what it holds there
      const alice = await call(replica, "/close_instance", { run_id: "alice-replicated" }, asAlice);
      expect(alice.status).toBe(404);
      expect(alice.json.detail).toMatch(/belongs to service/);
      const stats = (await call(replica, "/stats", undefined, asBob)).json as unknown as StatsDoc;
      expect(stats.instances).toEqual([]);
    } finally {
      await killAndWait(replica.child, "SIGTERM");
    }
    expect(
      (await service.as("alice", "/execute_command", { run_id: "alice-replicated", cmd: "true" })).status,
    ).toBe(200);
    await service.as("alice", "/close_instance", { run_id: "alice-replicated" });
  });

  it.skipIf(!hasDocker)(
    "a non-admin key still gets docker and the catalogue entries by default",
    async () => {
      const start = await service.as("bob", "/start_instance", {
        run_id: "bob-docker",
        environment_config: "shell",
      });
      expect(start.status, JSON.stringify(start.json)).toBe(200);
      expect(
        (await service.as("bob", "/execute_command", { run_id: "bob-docker", cmd: "echo in" })).json.result,
      ).toMatchObject({
        output: "in\n",
      });
      await service.as("bob", "/close_instance", { run_id: "bob-docker" });
    },
  );
});

describe("rollout service without keys (loopback only)", () => {
  it("keeps today's behaviour: anonymous is the admin, local works", async () => {
    const open = await serve();
    try {
      const start = await call(open, "/start_instance", {
        run_id: "anon",
        environment_config: { container_type: "local" },
      });
      expect(start.status).toBe(200);
      await call(open, "/close_instance", { run_id: "anon" });
    } finally {
      await killAndWait(open.child, "SIGTERM");
    }
  });

  it("refuses to start when a key's allow list names an unknown type or entry", async () => {
    const dir = mkdtempSync(join(tmpdir(), "affinetes-keys-"));
    const file = join(dir, "keys.json");
    writeFileSync(file, JSON.stringify({ [KEYS.bob]: { name: "bob", allow: { container_types: ["vm"] } } }));
    const bad = await afs(["serve", "--port", "0", "--db", join(dir, "s.db"), "--api-keys", file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/bob: allow\.container_types names vm; known: docker, local/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
    writeFileSync(file, JSON.stringify({ [KEYS.bob]: { name: "bob", allow: { environments: ["swe"] } } }));
    const noEntry = await afs(["serve", "--port", "0", "--db", join(dir, "s.db"), "--api-keys", file]);
    expect(noEntry.code).toBe(2);
    expect(noEntry.stderr).toMatch(/allow\.environments names swe, which needs --environments/);
  });
});
