/**
 * Confinement of shell sandboxes that need no Docker (issue 14, items 2 and 3): bubblewrap
 * sandboxes of the process runtime (through the real `afs serve` where the attack came that
 * way) and Slurm jobs holding such sandboxes. Each test performs an attack that worked
 * before, and sees it refused.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Instance } from "../../src/runtime/instance.js";
import { ProcessRuntime } from "../../src/runtime/process/process-runtime.js";
import type { ProcessRecord } from "../../src/runtime/process/process-state.js";
import { SlurmRuntime } from "../../src/runtime/slurm/slurm-runtime.js";
import { systemTool } from "../../src/runtime/system-tool.js";
import { INSTANCE_TAG_VARIABLE } from "../../src/util/tagged-processes.js";
import { taggedProcesses } from "../helpers/tagged-processes.js";
import { killAndWait } from "../helpers/client-process.js";
import { inCi } from "../helpers/docker.js";
import type { Service } from "../helpers/service.js";
import { call, run, serve, serviceDb } from "../helpers/service.js";
import { repoRoot } from "../helpers/paths.js";
import { hasSlurm } from "../helpers/slurm.js";
import type { TestNetwork } from "../helpers/test-network.js";
import { makeTestNetwork, probe } from "../helpers/test-network.js";

const hasBwrap = spawnSync("bwrap", ["--version"]).status === 0;
const hasSlirp = systemTool("slirp4netns") !== undefined;
const isRoot = process.getuid?.() === 0;
if (inCi && !(hasBwrap && hasSlirp && isRoot)) {
  throw new Error("CI must run as root with bwrap and slirp4netns (.ci/setup-slurm.sh installs them)");
}
const ready = hasBwrap && hasSlirp && isRoot;
const stateDir = process.env.AFFINETES_STATE_DIR ?? "";
const marker = () => `/tmp/affinetes-escape-${randomBytes(4).toString("hex")}`;

/** The record of the process instance holding a service's run (the service records its run id as a label). */
function recordOfRun(runId: string): ProcessRecord {
  for (const name of readdirSync(join(stateDir, "process"))) {
    const file = join(stateDir, "process", name, "state.json");
    if (!existsSync(file)) continue;
    const record = JSON.parse(readFileSync(file, "utf8")) as ProcessRecord;
    if (Object.values(record.labels).includes(runId) && record.isolation) return record;
  }
  throw new Error(`no confined instance holds run ${runId}`);
}

// made now: which tests run depends on it
const net: TestNetwork | undefined = ready ? makeTestNetwork() : undefined;
const servers = { allowed: "", other: "", loopback: "", allowedPort: 0 };

beforeAll(async () => {
  if (!net) return;
  const allowed = await net.server("allowed");
  servers.allowed = allowed.url;
  servers.allowedPort = allowed.port;
  servers.other = (await net.server("other")).url;
  servers.loopback = (await net.server("loopback", { loopback: true })).url;
});

afterAll(async () => {
  await net?.remove();
});

describe.skipIf(!ready)("bubblewrap sandboxes through the rollout service (afs serve)", () => {
  let service: Service;
  const db = serviceDb();

  beforeAll(async () => {
    service = await serve("--db", db);
  });

  afterAll(async () => {
    if (service) await killAndWait(service.child, "SIGTERM");
    rmSync(dirname(db), { recursive: true, force: true });
  });

  const start = (runId: string, config: Record<string, unknown> = {}) =>
    call(service, "/start_instance", {
      run_id: runId,
      environment_config: { container_type: "bubblewrap", ...config },
    });

  it('refuses a working directory outside the instance\'s own folder (cwd "/" made the host writable)', async () => {
    for (const cwd of ["/", "/etc", "../../..", "/workspace/../root", "/tmp"]) {
      const res = await start(`cwd-${randomBytes(3).toString("hex")}`, { cwd });
      expect(res.status, `${cwd}: ${JSON.stringify(res.json)}`).toBe(400);
      expect(JSON.stringify(res.json)).toMatch(/workdir|cwd/);
    }
    expect((await start("cwd-ok", { cwd: "repo/src" })).status).toBe(200);
    try {
      expect(await run(service, "cwd-ok", "pwd")).toBe("/workspace/repo/src\n");
      const escape = `/affinetes-escape-${randomBytes(4).toString("hex")}`;
      expect(await run(service, "cwd-ok", `touch ${escape} 2>&1; echo rc=$?`)).toMatch(/rc=1/);
      expect(existsSync(escape)).toBe(false);
      // a command's cwd is entered inside the sandbox: "/" there is its own read-only root
      for (const cwd of ["/", "/etc", "../../.."]) {
        const res = await call(service, "/execute_command", {
          run_id: "cwd-ok",
          cmd: `touch .${escape} 2>&1; echo rc=$?`,
          cwd,
        });
        expect(res.status, `${cwd}: ${JSON.stringify(res.json)}`).toBe(200);
        expect((res.json.result as { output: string }).output).toMatch(/rc=1/);
        expect(existsSync(`${cwd === "/etc" ? "/etc" : ""}${escape}`)).toBe(false);
      }
      const sub = await call(service, "/execute_command", {
        run_id: "cwd-ok",
        cmd: "mkdir -p x && cd x && pwd",
      });
      expect((sub.json.result as { output: string }).output).toBe("/workspace/repo/src/x\n");
      const relative = await call(service, "/execute_command", { run_id: "cwd-ok", cmd: "pwd", cwd: "x" });
      expect((relative.json.result as { output: string }).output).toBe("/workspace/repo/src/x\n");
    } finally {
      await call(service, "/close_instance", { run_id: "cwd-ok" });
    }
  });

  it("the request's env applies inside only: a PATH or LD_PRELOAD naming a binary written in the sandbox never runs outside", async () => {
    const escaped = marker();
    expect((await start("env-attack")).status).toBe(200);
    try {
      // where the sandbox's folder is on the host (before the fix, its own pwd said so)
      const own = recordOfRun("env-attack").isolation as { folders?: { workdir: string } } | undefined;
      const host = own?.folders?.workdir ?? (await run(service, "env-attack", "pwd")).trim();
      // the attacker's programs, named as every launcher the host might look up
      await run(
        service,
        "env-attack",
        `mkdir -p bin && for t in bwrap nsenter setpriv sh env timeout srun; do printf '#!/bin/sh\\ntouch ${escaped}\\n' > bin/$t; chmod +x bin/$t; done`,
      );
      let preload = "";
      if (systemTool("gcc")) {
        // a library whose constructor leaves the marker, wherever it is loaded
        writeFileSync(
          join(host, "evil.c"),
          `#include <fcntl.h>\n__attribute__((constructor)) static void f(void) { open("${escaped}", O_CREAT | O_WRONLY, 0644); }\n`,
        );
        execFileSync("gcc", ["-shared", "-fPIC", "-o", join(host, "evil.so"), join(host, "evil.c")]);
        chmodSync(join(host, "evil.so"), 0o755);
        preload = join(host, "evil.so");
      }
      const env = {
        PATH: `${host}/bin:/workspace/bin:/usr/bin:/bin`,
        ...(preload ? { LD_PRELOAD: preload } : {}),
      };
      const res = await call(service, "/execute_command", { run_id: "env-attack", cmd: "true", env });
      expect(res.status, JSON.stringify(res.json)).toBe(200);
      expect(existsSync(escaped), "a program written in the sandbox ran on the host").toBe(false);
      // the variables did apply — inside: the command's shell was the attacker's sh, in the private /tmp ...
      expect(await run(service, "env-attack", `test -e ${escaped} && echo inside`)).toBe("inside\n");
      // ... and the instance's own env (start_instance) the same way
      expect((await start("env-attack-2", { env })).status).toBe(200);
      await call(service, "/execute_command", { run_id: "env-attack-2", cmd: "true" });
      await call(service, "/close_instance", { run_id: "env-attack-2" });
      // ... but nothing ran outside the sandbox
      expect(existsSync(escaped)).toBe(false);
      for (const bad of [{ "A=B": "x" }, { "": "x" }, { X: "a\u0000b" }]) {
        const refused = await call(service, "/execute_command", {
          run_id: "env-attack",
          cmd: "true",
          env: bad,
        });
        expect(refused.status, JSON.stringify(refused.json)).toBe(400);
      }
    } finally {
      await call(service, "/close_instance", { run_id: "env-attack" });
      rmSync(escaped, { force: true });
    }
  });

  it("the host's loopback services are unreachable (a command called the key-less service and started a local instance)", async () => {
    expect((await start("loop")).status).toBe(200);
    try {
      const port = new URL(service.url).port;
      // the probe works: the sandbox (network "full") reaches a server outside the host's loopback
      if (net) expect(await run(service, "loop", probe(servers.allowed))).toBe("allowed\n");
      for (const url of [
        `${service.url}/health`,
        `http://10.0.2.2:${port}/health`,
        `http://localhost:${port}/health`,
      ]) {
        expect(await run(service, "loop", probe(url))).toMatch(/^unreachable/);
      }
      const attack = [
        "import json, urllib.request",
        "body = json.dumps({'run_id': 'escaped', 'environment_config': {'container_type': 'local'}}).encode()",
        "for host in ['127.0.0.1', '10.0.2.2']:",
        "    try:",
        `        urllib.request.urlopen(urllib.request.Request('http://' + host + ':${port}/start_instance', body, {'content-type': 'application/json'}), timeout=3)`,
        "        print('started')",
        "    except Exception as e:",
        "        print('refused', type(e).__name__)",
      ].join("\n");
      expect(await run(service, "loop", `python3 -c "${attack}"`)).not.toMatch(/started/);
      expect((await call(service, "/stats?run_id=escaped")).json.instances).toEqual([]);
    } finally {
      await call(service, "/close_instance", { run_id: "loop" });
    }
  });

  it("secrets are not visible inside: the service's state folder, its database and keys, /root, /etc/shadow", async () => {
    const tag = randomBytes(4).toString("hex");
    const canaries = [
      join(stateDir, `affinetes-canary-${tag}`),
      join(dirname(db), `affinetes-canary-${tag}`),
      `/root/.affinetes-canary-${tag}`,
    ];
    for (const file of canaries) writeFileSync(file, "secret\n", { mode: 0o644 });
    expect((await start("secrets")).status).toBe(200);
    try {
      for (const file of [...canaries, db, "/etc/shadow", "/root/.ssh/id_ed25519", "/etc/munge/munge.key"]) {
        expect(await run(service, "secrets", `cat ${file} 2>/dev/null || echo hidden`)).toBe("hidden\n");
      }
      expect(await run(service, "secrets", "ls -d /root /home /var /srv /opt /run 2>/dev/null | wc -l")).toBe(
        "0\n",
      );
      expect(await run(service, "secrets", `find / -xdev -name '*canary-${tag}*' 2>/dev/null | wc -l`)).toBe(
        "0\n",
      );
      expect(await run(service, "secrets", "id -u")).toBe("65534\n"); // nor could it read root's files if it saw them
    } finally {
      await call(service, "/close_instance", { run_id: "secrets" });
      for (const file of canaries) rmSync(file, { force: true });
    }
  });
});

describe.skipIf(!ready)("network policy of bubblewrap sandboxes (process runtime)", () => {
  const started: Instance[] = [];
  const runtime = new ProcessRuntime({ isolation: "bubblewrap" });
  const sandbox = async (network: "none" | "full" | { allow: string[] }, pool = "confine-net") => {
    const box = await runtime.start({
      envName: "confine",
      serve: false,
      network,
      labels: { "affinetes.pool": pool },
    });
    started.push(box);
    return box;
  };
  const answer = async (box: Instance, url: string) => (await box.exec(probe(url))).stdout.trim();

  afterAll(async () => {
    await Promise.all(started.map((box) => box.stop()));
  });

  it.skipIf(!net)(
    "an allowlisted sandbox reaches the allowed server, not a second one on another port, nor the host's loopback",
    async () => {
      const box = await sandbox({ allow: [`${net?.address}:${servers.allowedPort}`] });
      expect(await answer(box, servers.allowed)).toBe("allowed");
      expect(await answer(box, servers.other)).toMatch(/^unreachable/);
      expect(await answer(box, servers.loopback)).toMatch(/^unreachable/);
    },
  );

  it.skipIf(!net)('a "none" sandbox reaches nothing (its own loopback only)', async () => {
    const box = await sandbox("none");
    for (const url of [servers.allowed, servers.other, servers.loopback]) {
      expect(await answer(box, url)).toMatch(/^unreachable/);
    }
    const own = await box.exec(
      `python3 -m http.server 8765 --bind 127.0.0.1 >/dev/null 2>&1 & sleep 1; ${probe("http://127.0.0.1:8765/")} | head -c 15; kill $!`,
    );
    expect(own.stdout).toMatch(/<!DOCTYPE|<html/i);
    // a plain (unconfined) sandbox holds "none" the same way
    const plain = await new ProcessRuntime().start({ envName: "confine", serve: false, network: "none" });
    started.push(plain);
    expect(await answer(plain, servers.allowed)).toMatch(/^unreachable/);
  });

  it.skipIf(!net)('"full": outbound through the NAT, the host\'s loopback never', async () => {
    const box = await sandbox("full");
    expect(await answer(box, servers.allowed)).toBe("allowed");
    expect(await answer(box, servers.other)).toBe("other");
    const port = new URL(servers.loopback).port;
    for (const url of [servers.loopback, `http://10.0.2.2:${port}/`]) {
      expect(await answer(box, url)).toMatch(/^unreachable/);
    }
    // nor can it undo its policy: no capability over its namespace
    expect((await box.exec("ip link set lo down 2>&1; echo rc=$?")).stdout).toMatch(/rc=[12]/);
  });

  it("the namespace's helpers (slirp4netns) are tagged and stopped with the instance, by an adopting client, and by garbage collection", async () => {
    const helpers = (box: Instance) => {
      const record = JSON.parse(
        readFileSync(join(stateDir, "process", box.name, "state.json"), "utf8"),
      ) as ProcessRecord;
      return { record, pids: taggedProcesses(INSTANCE_TAG_VARIABLE, record.tag ?? "") };
    };
    const slirpOf = (pids: number[]) =>
      pids.filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith(
            systemTool("slirp4netns") ?? "slirp4netns",
          );
        } catch {
          return false;
        }
      });
    // stopped by another client (a restarted service adopts it)
    const first = await sandbox("full", "confine-adopt");
    const { record, pids } = helpers(first);
    expect(slirpOf(pids)).toHaveLength(1);
    const [adopted] = await new ProcessRuntime().find("confine-adopt");
    expect(adopted?.id).toBe(first.id);
    await adopted?.stop();
    expect(taggedProcesses(INSTANCE_TAG_VARIABLE, record.tag ?? "")).toEqual([]);
    expect(existsSync(record.isolation?.folders.root ?? "/")).toBe(false);
    // its holder killed outright (not through stop): garbage collection finds what is left
    const second = await sandbox("full", "confine-gc");
    const left = helpers(second);
    const slirp = slirpOf(left.pids);
    expect(slirp).toHaveLength(1);
    process.kill(left.record.pid, "SIGKILL");
    process.kill(left.record.network?.pid ?? 0, "SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(taggedProcesses(INSTANCE_TAG_VARIABLE, left.record.tag ?? "")).toContain(slirp[0]);
    expect(await runtime.garbageCollect()).toContain(second.name);
    expect(taggedProcesses(INSTANCE_TAG_VARIABLE, left.record.tag ?? "")).toEqual([]);
    expect(existsSync(left.record.isolation?.folders.root ?? "/")).toBe(false);
  });

  it('a service that is not root holds "none" in a user namespace of its own, and refuses outbound policies', async () => {
    const dist = join(repoRoot, "dist", "index.js");
    const asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"];
    if (spawnSync("setpriv", [...asNobody, "test", "-r", dist]).status !== 0) return; // the checkout is private here
    const dir = mkdtempSync(join(tmpdir(), "affinetes-rootless-"));
    chmodSync(dir, 0o777);
    writeFileSync(
      join(dir, "run.mjs"),
      [
        `import { ProcessRuntime } from ${JSON.stringify(dist)};`,
        'const runtime = new ProcessRuntime({ isolation: "bubblewrap" });',
        'await runtime.start({ envName: "x", serve: false }).catch((e) => console.log("full:", e.code));',
        'const box = await runtime.start({ envName: "x", serve: false, network: "none" });',
        `console.log((await box.exec(${JSON.stringify(`id -u; ${probe(servers.allowed || "http://10.0.2.2:1/")}; ip link set lo down 2>/dev/null || echo kept`)})).stdout);`,
        "await box.stop();",
      ].join("\n"),
    );
    try {
      const out = execFileSync("setpriv", [...asNobody, process.execPath, join(dir, "run.mjs")], {
        encoding: "utf8",
        env: { PATH: "/usr/bin:/bin", HOME: dir, AFFINETES_STATE_DIR: join(dir, "state") },
      });
      expect(out).toMatch(/^full: UNSUPPORTED\n65534\nunreachable \w+\nkept\n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses what it cannot hold, before anything is made", async () => {
    await expect(
      new ProcessRuntime().start({ envName: "x", envPath: "examples/calculator", network: "none" }),
    ).rejects.toMatchObject({ code: "UNSUPPORTED" });
    await expect(
      runtime.start({ envName: "x", serve: false, network: { allow: ["not a host"] } }),
    ).rejects.toMatchObject({ code: "VALIDATION" });
    await expect(runtime.start({ envName: "x", serve: false, image: "/root" })).rejects.toMatchObject({
      code: "VALIDATION",
    });
  });
});

describe.skipIf(!ready || !hasSlurm)(
  "Slurm-hosted shell sandboxes hold the same policy (namespace made by the job on its node)",
  () => {
    it.skipIf(!net)(
      "bubblewrap with an allowlist: the allowed server only; host loopback and secrets out of reach; cwd inside",
      async () => {
        const runtime = new SlurmRuntime({ container: "bubblewrap", sbatchArgs: ["--time=5"] });
        await expect(runtime.start({ envName: "confine", serve: false, workdir: "/" })).rejects.toMatchObject(
          {
            code: "VALIDATION",
          },
        );
        const box = await runtime.start({
          envName: "confine",
          serve: false,
          workdir: "repo",
          network: { allow: [`${net?.address}:${servers.allowedPort}`] },
        });
        try {
          expect((await box.exec("pwd; id -u")).stdout).toBe("/workspace/repo\n65534\n");
          expect((await box.exec(probe(servers.allowed))).stdout).toBe("allowed\n");
          expect((await box.exec(probe(servers.other))).stdout).toMatch(/^unreachable/);
          expect((await box.exec(probe(servers.loopback))).stdout).toMatch(/^unreachable/);
          expect(
            (await box.exec("cat /etc/munge/munge.key /etc/shadow 2>/dev/null || echo hidden")).stdout,
          ).toBe("hidden\n");
          const escaped = marker();
          await box.exec("true", {
            env: { LD_PRELOAD: "/nonexistent.so", PATH: "/workspace:/usr/bin:/bin" },
          });
          expect(existsSync(escaped)).toBe(false);
          await expect(box.exec("pwd", { cwd: "/" })).rejects.toMatchObject({ code: "VALIDATION" });
        } finally {
          await box.stop();
        }
      },
    );

    it.skipIf(!net)('a plain shell job (container "none") with network "none" reaches nothing', async () => {
      const runtime = new SlurmRuntime({ sbatchArgs: ["--time=5"] });
      const box = await runtime.start({ envName: "confine", serve: false, network: "none" });
      try {
        expect((await box.exec(probe(servers.allowed))).stdout).toMatch(/^unreachable/);
        expect((await box.exec(probe(servers.loopback))).stdout).toMatch(/^unreachable/);
      } finally {
        await box.stop();
      }
    });
  },
);
