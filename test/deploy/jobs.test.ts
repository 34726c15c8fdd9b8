import { execFileSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Host } from "../../src/host/host.js";
import { getJob, listJobs, startJob } from "../../src/deploy/jobs.js";
import type { Job } from "../../src/deploy/job.js";
import {
  AbortedError,
  ConflictError,
  NotFoundError,
  TimeoutError,
  ValidationError,
} from "../../src/errors.js";
import { deployHosts, dropConnections, hasDeployHosts } from "../helpers/deploy-hosts.js";
import { until } from "../helpers/until.js";

const hostD = deployHosts[1]; // an sshd no other test kills
const spec = hostD.url;

/** Detached tmux jobs on a real SSH host (b is this machine, so processes can be checked here too). */
describe.skipIf(!hasDeployHosts)("remote jobs", () => {
  // Unique per run: other runs may share this machine, its tmux server and /tmp.
  const id = randomBytes(4).toString("hex");
  const root = `/tmp/affinetes-test-jobs-${id}`;
  const name = (what: string) => `${what}-${id}`;
  let host: Host;

  /** Processes whose command line holds `marker` (the pgrep itself excluded). */
  const processesWith = async (marker: string): Promise<string[]> => {
    const r = await host.exec(`pgrep -af ${marker} | grep -v pgrep || true`);
    return r.stdout.split("\n").filter(Boolean);
  };

  /** sshd daemonizes before it listens: a restarted one may refuse for a moment. */
  const connectWhenUp = async (): Promise<Host> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await Host.connect(spec);
      } catch (err) {
        if (attempt >= 30) throw err;
        await sleep(500);
      }
    }
  };

  beforeAll(async () => {
    host = await Host.connect(spec);
  });

  afterEach(async () => {
    for (const info of await listJobs(host, { root })) {
      if (info.state !== "exited") await (await getJob(host, info.name, { root })).kill();
    }
  });

  afterAll(async () => {
    await host.exec(`rm -rf ${root}`);
    const sessions = await host.exec("tmux ls -F '#{session_name}' 2>/dev/null || true");
    host.close();
    expect(sessions.stdout.split("\n").filter((s) => s.startsWith("afs-job-") && s.includes(id))).toEqual([]);
  });

  it("runs a job to its (non-zero) exit code in its workspace with its env, and keeps the log", async () => {
    const job = await startJob(host, {
      name: name("exit"),
      root,
      command: 'echo out; echo err >&2; echo "$GREETING"; pwd; exit 3',
      workspace: "/tmp",
      env: { GREETING: `it's "quoted" $HOME` },
    });
    expect(job.name).toBe(name("exit"));
    const info = await job.wait({ timeoutMs: 20_000 });
    expect(info).toMatchObject({ name: name("exit"), state: "exited", exitCode: 3, workspace: "/tmp" });
    expect(info.command).toBe('echo out; echo err >&2; echo "$GREETING"; pwd; exit 3');
    expect(Date.parse(info.startedAt)).not.toBeNaN();
    expect(Date.parse(info.endedAt ?? "")).toBeGreaterThanOrEqual(Date.parse(info.startedAt));
    const text = `out\nerr\nit's "quoted" $HOME\n/tmp\n`;
    expect(info.logBytes).toBe(Buffer.byteLength(text));
    expect(await job.logs()).toEqual({ text, offset: Buffer.byteLength(text) });
    const files = await host.exec(`ls ${root}/jobs/${name("exit")}`);
    expect(files.stdout.split("\n")).toEqual(
      expect.arrayContaining(["command", "workspace", "started_at", "ended_at", "log", "pid", "exit_code"]),
    );
    // an ended job is not marked killed
    expect(await job.kill()).toMatchObject({ state: "exited", exitCode: 3 });
  });

  it("reads the log by last lines and from a byte offset", async () => {
    const job = await startJob(host, { name: name("logs"), root, command: "printf 'a\\nbb\\nccc\\n'" });
    await job.wait({ timeoutMs: 20_000 });
    expect(await job.logs({ tail: 2 })).toEqual({ text: "bb\nccc\n", offset: 9 });
    expect(await job.logs({ offset: 2 })).toEqual({ text: "bb\nccc\n", offset: 9 });
    expect(await job.logs({ offset: 2, tail: 1 })).toEqual({ text: "ccc\n", offset: 9 });
    expect(await job.logs({ offset: 9 })).toEqual({ text: "", offset: 9 });
    await expect(job.logs({ offset: -1 })).rejects.toBeInstanceOf(ValidationError);
  });

  it("follows the log line by line as it is written, until the job ends", async () => {
    const job = await startJob(host, {
      name: name("follow"),
      root,
      command: "for i in 1 2 3 4 5 6; do echo line$i; sleep 0.3; done; printf partial",
    });
    const lines: string[] = [];
    let stateAtFirstLine: string | undefined;
    for await (const line of job.follow()) {
      if (lines.length === 0) stateAtFirstLine = (await job.status()).state;
      lines.push(line);
    }
    expect(stateAtFirstLine).toBe("running");
    expect(lines).toEqual(["line1", "line2", "line3", "line4", "line5", "line6", "partial"]);
    expect((await job.status()).state).toBe("exited");

    const fromOffset: string[] = [];
    for await (const line of job.follow({ offset: 6 })) fromOffset.push(line);
    expect(fromOffset).toEqual(["line2", "line3", "line4", "line5", "line6", "partial"]);
  });

  it("stops following, and the remote tail, when the signal aborts", async () => {
    const job = await startJob(host, { name: name("abort"), root, command: "echo first; sleep 60" });
    const abort = new AbortController();
    const lines: string[] = [];
    for await (const line of job.follow({ signal: abort.signal })) {
      lines.push(line);
      abort.abort();
    }
    expect(lines).toEqual(["first"]);
    expect(await until(async () => (await processesWith(`"tail .*${root}"`)).length === 0, 5_000)).toBe(true);
    expect((await job.status()).state).toBe("running");
  });

  it("bounds wait with timeoutMs and signal; the job runs on", async () => {
    const job = await startJob(host, { name: name("wait"), root, command: "sleep 60" });
    await expect(job.wait({ timeoutMs: 300 })).rejects.toBeInstanceOf(TimeoutError);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 200);
    await expect(job.wait({ signal: abort.signal })).rejects.toBeInstanceOf(AbortedError);
    expect((await job.status()).state).toBe("running");
  });

  it("refuses a second running job of the same name; replaces an ended one", async () => {
    const first = await startJob(host, { name: name("dup"), root, command: "echo first; sleep 60" });
    await expect(startJob(host, { name: name("dup"), root, command: "true" })).rejects.toBeInstanceOf(
      ConflictError,
    );
    await expect(first.remove()).rejects.toBeInstanceOf(ConflictError);
    await first.kill();
    const second = await startJob(host, { name: name("dup"), root, command: "echo second" });
    expect(await second.wait({ timeoutMs: 20_000 })).toMatchObject({ state: "exited", exitCode: 0 });
    expect((await second.logs()).text).toBe("second\n");
  });

  it("validates names and options", async () => {
    for (const bad of ["", "a/b", "a b", "..", ".hidden", "x".repeat(65), "semi;colon"]) {
      await expect(startJob(host, { name: bad, root, command: "true" })).rejects.toBeInstanceOf(
        ValidationError,
      );
    }
    await expect(getJob(host, "../etc", { root })).rejects.toBeInstanceOf(ValidationError);
    const ok = { name: name("valid"), root, command: "true" };
    await expect(startJob(host, { ...ok, command: " " })).rejects.toBeInstanceOf(ValidationError);
    await expect(startJob(host, { ...ok, env: { "BAD-KEY": "x" } })).rejects.toBeInstanceOf(ValidationError);
    await expect(startJob(host, { ...ok, root: "relative/root" })).rejects.toBeInstanceOf(ValidationError);
    await expect(startJob(host, { ...ok, workspace: `${root}/missing` })).rejects.toBeInstanceOf(
      ValidationError,
    );
    // the 64-character name with dots is fine (tmux would turn dots into "_" in session names)
    const long = `a.b-${id}-`.padEnd(64, "x");
    await (await startJob(host, { ...ok, name: long })).wait({ timeoutMs: 20_000 });
  });

  it("reports an unknown job as NotFoundError, also after remove()", async () => {
    await expect(getJob(host, name("nobody"), { root })).rejects.toBeInstanceOf(NotFoundError);
    const job = await startJob(host, { name: name("gone"), root, command: "true" });
    await job.wait({ timeoutMs: 20_000 });
    await job.remove();
    await job.remove(); // idempotent
    await expect(getJob(host, name("gone"), { root })).rejects.toBeInstanceOf(NotFoundError);
    await expect(job.status()).rejects.toBeInstanceOf(NotFoundError);
  });

  it("kills the whole process tree, children and escaped daemons included; idempotent", async () => {
    const marker = `${randomInt(100_000, 999_999)}`;
    const job = await startJob(host, {
      name: name("kill"),
      root,
      command: `sleep 1000.${marker} & setsid sleep 3000.${marker} & sleep 2000.${marker}; wait`,
    });
    expect(await until(async () => (await processesWith(marker)).length === 3, 5_000)).toBe(true);
    const info = await job.kill();
    expect(info).toMatchObject({ state: "killed", exitCode: 137 });
    expect(info.endedAt).toBeDefined();
    expect(await until(async () => (await processesWith(marker)).length === 0, 5_000)).toBe(true);
    const session = await host.exec(`tmux has-session -t '=afs-job-${name("kill")}'`);
    expect(session.exitCode).not.toBe(0);
    expect(await job.kill()).toMatchObject({ state: "killed", exitCode: 137 });
    expect(await job.wait({ timeoutMs: 5_000 })).toMatchObject({ state: "killed" });
  });

  it("lists the jobs of a root with their states", async () => {
    const done = await startJob(host, { name: name("list-a"), root: `${root}/list`, command: "exit 5" });
    await done.wait({ timeoutMs: 20_000 });
    await startJob(host, { name: name("list-b"), root: `${root}/list`, command: "sleep 60" });
    const jobs = await listJobs(host, { root: `${root}/list` });
    expect(jobs.map((j) => [j.name, j.state, j.exitCode])).toEqual([
      [name("list-a"), "exited", 5],
      [name("list-b"), "running", undefined],
    ]);
    expect(await listJobs(host, { root: `${root}/empty` })).toEqual([]);
    await (await getJob(host, name("list-b"), { root: `${root}/list` })).kill();
  });

  it("survives the SSH connection dying: a new connection finds it and its full log", async () => {
    const first = await Host.connect(spec);
    let job: Job = await startJob(first, {
      name: name("survive"),
      root,
      command: "for i in 1 2 3 4 5 6; do echo tick$i; sleep 0.5; done",
    });
    expect((await job.status()).state).toBe("running");
    // the connection dies under the client (its sshd process killed), as on a network failure
    expect(dropConnections(hostD.address)).toBeGreaterThan(0);
    first.close();
    await sleep(1_000);
    // the job still runs (d is this machine, so ask tmux here)
    execFileSync("tmux", ["has-session", "-t", `=afs-job-${name("survive")}`]);
    await using second = await connectWhenUp();
    job = await getJob(second, name("survive"), { root });
    expect(await job.wait({ timeoutMs: 20_000 })).toMatchObject({ state: "exited", exitCode: 0 });
    expect((await job.logs()).text).toBe([1, 2, 3, 4, 5, 6].map((i) => `tick${i}\n`).join(""));
  });
});
