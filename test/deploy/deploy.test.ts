import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Host,
  deployAndRun,
  deployProject,
  getJob,
  listJobs,
  runInProject,
  runOnHosts,
  startJob,
  syncResults,
} from "../../src/deploy/index.js";
import { CommandError, HostConnectionError, TimeoutError, ValidationError } from "../../src/errors.js";
import { afs } from "../helpers/afs.js";
import { until } from "../helpers/until.js";
import { deployHosts, hasDeployHosts } from "../helpers/deploy-hosts.js";

const fixtures = join(import.meta.dirname, "..", "fixtures", "deploy");

/** Deploying, running, detached jobs in a workspace and multi-node runs, on the real sshd hosts. */
describe.skipIf(!hasDeployHosts)("deploy over SSH", () => {
  const id = randomBytes(4).toString("hex");
  // hosts b and c are this machine's root: one root per test run keeps runs apart
  const root = `/tmp/affinetes-test-deploy-${id}`;
  const local = mkdtempSync(join(tmpdir(), "affinetes-test-deploy-"));
  let b: Host;
  let c: Host;

  beforeAll(async () => {
    b = await Host.connect(deployHosts[0].url);
    c = await Host.connect(deployHosts[1].url);
  });

  afterAll(async () => {
    for (const job of (await listJobs(b, { root }).catch(() => [])).filter((j) => j.state === "running"))
      await (await getJob(b, job.name, { root })).kill();
    await b?.exec(`rm -rf ${root}`);
    b?.close();
    c?.close();
    rmSync(local, { recursive: true, force: true });
  });

  /** A copy of a fixture project under a name of this run. */
  const project = (fixture: string, name = `${fixture}-${id}`): string => {
    const dir = join(local, name);
    cpSync(join(fixtures, fixture), dir, { recursive: true });
    return dir;
  };

  it("deployAndRun: pushes, prepares (npm) and runs; a failing command is a result, or with check a CommandError", async () => {
    const localPath = project("npm");
    writeFileSync(join(localPath, "env.js"), "console.log(process.env.SEED, process.cwd());\n");
    const r = await deployAndRun(b, {
      localPath,
      root,
      backend: "npm",
      command: "node env.js",
      env: { SEED: "41 2" },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`41 2 ${r.workspace.path}`);
    expect(r.workspace.path).toBe(`${root}/workspaces/npm-${id}`);
    expect(r.workspace).toMatchObject({ backend: "npm", project: `npm-${id}` });
    expect(`${r.workspace}/results`).toBe(`${root}/workspaces/npm-${id}/results`);

    const failed = await runInProject(b, r.workspace, "echo out; echo err >&2; exit 3");
    expect(failed).toMatchObject({ exitCode: 3, stdout: "out\n", stderr: "err\n" });
    await expect(
      deployAndRun(b, { localPath, root, backend: "npm", command: "exit 5", check: true }),
    ).rejects.toSatisfy((e) => e instanceof CommandError && e.exitCode === 5);
    await expect(runInProject(b, r.workspace, "sleep 5", { timeoutMs: 300 })).resolves.toMatchObject({
      timedOut: true,
    });
    await expect(deployAndRun(b, { localPath, root, command: " " })).rejects.toBeInstanceOf(ValidationError);
    await expect(deployProject(b, { localPath, root, backend: "nope" as "npm" })).rejects.toBeInstanceOf(
      ValidationError,
    );
  });

  it("a detached job runs in the workspace's environment (venv), records the command as given, and its results come back", async () => {
    const ws = await deployProject(b, { localPath: project("venv"), root, backend: "venv" });
    const job = await startJob(b, {
      name: `train-${id}`,
      root,
      workspace: ws,
      env: { SEED: "7" },
      command:
        'mkdir -p results/run && python -c "import six, os, sys; print(sys.prefix)" > results/run/prefix.txt && echo $SEED > results/seed.txt',
    });
    const info = await job.wait({ timeoutMs: 60_000 });
    expect(info, (await job.logs()).text).toMatchObject({ state: "exited", exitCode: 0 });
    expect(info.command).toMatch(/^mkdir -p results/);
    const into = join(local, "results");
    const report = await syncResults(b, `${ws}/results`, into);
    expect(report.received.sort()).toEqual(["run/prefix.txt", "seed.txt"]);
    expect(readFileSync(join(into, "run", "prefix.txt"), "utf8").trim()).toBe(`${ws.path}/.venv`);
    expect(readFileSync(join(into, "seed.txt"), "utf8").trim()).toBe("7");
  });

  it("a docker workspace: commands run in its image; a killed job or a timed-out command leaves no container", async () => {
    const engine = (...args: string[]) =>
      execFileSync("docker", ["-H", `unix://${deployHosts[0].socket}`, ...args], { encoding: "utf8" });
    if (!engine("images", "-q", "affinetes/python:3.11").trim())
      execFileSync("sh", [
        "-c",
        `docker save affinetes/python:3.11 | docker -H unix://${deployHosts[0].socket} load`,
      ]);
    const ws = await deployProject(b, { localPath: project("docker"), root, backend: "docker" });
    const ours = () => engine("ps", "-aq", "--filter", "label=affinetes.deploy").trim();
    try {
      const r = await runInProject(b, ws, "cat /etc/affinetes-fixture; echo $SEED; pwd", {
        env: { SEED: "3" },
      });
      expect(r.stdout, r.stderr).toBe("baked into the image\n3\n/workspace\n");
      const timedOut = await runInProject(b, ws, "sleep 60", { timeoutMs: 3_000 });
      expect(timedOut.timedOut).toBe(true);
      expect(await until(async () => ours() === "", 10_000)).toBe(true);
      const job = await startJob(b, { name: `box-${id}`, root, workspace: ws, command: "sleep 60" });
      expect(await until(async () => ours() !== "", 20_000)).toBe(true);
      expect((await job.kill()).state).toBe("killed");
      expect(await until(async () => ours() === "", 10_000)).toBe(true);
    } finally {
      for (const container of ours().split("\n").filter(Boolean)) engine("rm", "-f", container);
      engine("rmi", "-f", ws.bootstrap.detail.replace(/^image /, ""));
    }
  });

  it("runs one command on two hosts with RANK, WORLD_SIZE and MASTER_ADDR", async () => {
    const results = await runOnHosts([b, c], {
      command: 'echo "$RANK/$WORLD_SIZE $MASTER_ADDR:$MASTER_PORT $SHARED"',
      env: { SHARED: "x" },
      masterPort: 29600,
    });
    expect(results.map((r) => [r.rank, r.host, r.stdout.trim()])).toEqual([
      [0, deployHosts[0].url, "0/2 127.0.0.3:29600 x"],
      [1, deployHosts[1].url, "1/2 127.0.0.3:29600 x"],
    ]);
    await expect(runOnHosts([], { command: "true" })).rejects.toBeInstanceOf(ValidationError);
    await expect(runOnHosts([b], { command: "true", workspaces: ["~", "~"] })).rejects.toBeInstanceOf(
      ValidationError,
    );
  });

  it("an unreachable host or a bad address is a clear error", async () => {
    await expect(Host.connect("root@127.0.0.9:2222", { connectTimeoutMs: 3_000 })).rejects.toThrow(
      /connection refused/,
    );
    await expect(Host.connect("root@127.0.0.9:2222")).rejects.toBeInstanceOf(HostConnectionError);
    await expect(Host.connect("localhost")).rejects.toBeInstanceOf(ValidationError);
    await expect(Host.connect("not a host!")).rejects.toBeInstanceOf(ValidationError);
  });

  it("afs deploy runs the command there and exits with its code; afs jobs ls/wait/logs/kill", async () => {
    const dir = join(local, `cli-${id}`);
    mkdirSync(dir);
    writeFileSync(join(dir, "hello.sh"), 'echo "hello $WHO"\n');
    const host = ["--host", deployHosts[0].url, "--root", root];
    const ran = await afs([
      "deploy",
      dir,
      ...host,
      "--backend",
      "none",
      "--env",
      "WHO=cli",
      "--",
      "sh hello.sh",
    ]);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toBe("hello cli\n");
    expect(ran.stderr).toMatch(/1 file\(s\) sent/);
    expect((await afs(["deploy", dir, ...host, "--backend", "none", "--", "exit 9"])).code).toBe(9);
    const detached = await afs(["deploy", dir, ...host, "--detach", `cli-${id}`, "--", "sleep 30"]);
    expect(detached.code, detached.stderr).toBe(0);
    expect((await afs(["jobs", "ls", ...host])).stdout).toMatch(
      new RegExp(`cli-${id}\\s+running\\s+.*sleep 30`),
    );
    const waited = await afs(["jobs", "wait", ...host, `cli-${id}`, "--timeout", "0.5"]);
    expect(waited.code).toBe(4); // timeout
    expect((await afs(["jobs", "kill", ...host, `cli-${id}`])).stdout).toMatch(/killed/);
    const logs = await afs(["jobs", "logs", ...host, "nope"]);
    expect(logs.code).toBe(3); // not found
    expect((await afs(["deploy", dir, ...host, "--backend", "pip", "--", "true"])).code).toBe(2);
    expect((await afs(["jobs", "wait", ...host, `cli-${id}`, "--timeout", "soon"])).code).toBe(2);
  });

  it("a deploy past its timeout is a TimeoutError", async () => {
    await expect(
      deployProject(b, { localPath: project("npm", `slow-${id}`), root, backend: "npm", timeoutMs: 1 }),
    ).rejects.toBeInstanceOf(TimeoutError);
  });
});
