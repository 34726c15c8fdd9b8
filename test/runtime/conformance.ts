import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { InstanceStartError, Wait } from "../../src/index.js";
import type {
  Instance,
  InstanceSpec,
  Runtime,
  SandboxSpec,
  ServeSpec,
  ServingInstance,
  TaskSpec,
} from "../../src/index.js";
import { HttpClient } from "../../src/transport/http-client.js";
import { processesRunning } from "../helpers/processes.js";
import { until } from "../helpers/until.js";

export interface ConformanceTarget {
  name: string;
  /** Creates the runtime under test; called once per suite. */
  runtime: () => Promise<Runtime>;
  /** A spec of a function-based environment (the calculator example) for this runtime. */
  spec: (overrides?: Partial<ServeSpec>) => ServeSpec;
  /** A spec of test/fixtures/broken-env, whose env.py raises at import. */
  brokenSpec: () => InstanceSpec;
  /** A shell sandbox (serve: false) whose commands run in `workdir`; with `task`, a task there. */
  sandboxSpec: (workdir: string) => SandboxSpec;
  /** A folder the sandbox may use as its working directory. */
  sandboxWorkdir: () => string;
}

async function health(instance: ServingInstance): Promise<number> {
  const http = new HttpClient(instance.endpoint());
  try {
    return (await http.request({ method: "GET", path: "/health" })).status;
  } finally {
    await http.close();
  }
}

/** The contract every runtime keeps. */
export function runtimeConformance(target: ConformanceTarget): void {
  describe(`runtime conformance: ${target.name}`, () => {
    let runtime: Runtime;
    const started: Instance[] = [];
    const start = async (overrides?: Partial<ServeSpec>) => {
      const instance = await runtime.start(target.spec(overrides), { timeoutMs: 60_000 });
      started.push(instance);
      return instance;
    };

    beforeAll(async () => {
      runtime = await target.runtime();
    });

    afterAll(async () => {
      await Promise.all(started.map((i) => i.stop()));
      await runtime?.close();
    });

    it("starts a ready instance whose endpoint answers /health", async () => {
      const instance = await start();
      expect(instance.runtime).toBe(runtime.kind);
      expect(instance.kind).toBe("serve");
      expect(instance.envType).toBe("function_based");
      expect(instance.reused).toBe(false);
      expect(await health(instance)).toBe(200);
      expect(await instance.isRunning()).toBe(true);
    });

    it("runs commands with exit code, env and cwd; a command past its timeout is killed and flagged", async () => {
      const instance = await start();
      const ok = await instance.exec("echo out; echo err >&2; echo $GREETING; pwd", {
        env: { GREETING: "hi" },
        cwd: "/tmp",
      });
      expect(ok).toEqual({
        stdout: "out\nhi\n/tmp\n",
        stderr: "err\n",
        exitCode: 0,
        timedOut: false,
        truncated: false,
      });
      // Past the cap, the head and the tail of the output are kept, the middle is dropped and counted.
      const big = await instance.exec("seq 1 100000", { maxOutputBytes: 1000 });
      expect(big.truncated).toBe(true);
      expect(big.stdout.startsWith("1\n2\n3\n")).toBe(true);
      expect(big.stdout.endsWith("99999\n100000\n")).toBe(true);
      expect(big.stdout).toMatch(/\.\.\. \[\d+ bytes truncated\] \.\.\./);
      expect(big.stdout.length).toBeLessThan(1100);
      expect((await instance.exec("exit 3")).exitCode).toBe(3);
      const slow = await instance.exec("echo partial; sleep 30", { timeoutMs: 300 });
      expect(slow).toMatchObject({ stdout: "partial\n", timedOut: true });
      expect(slow.exitCode).not.toBe(0);
      expect((await instance.exec("echo still-usable")).stdout).toBe("still-usable\n");
    });

    it("keeps the server's output in logs, with tail", async () => {
      const instance = await start();
      // Docker's log driver copies output asynchronously: the line arrives shortly after start.
      let logs = "";
      for (let i = 0; i < 50 && !logs.includes("listening on"); i++) {
        logs = await instance.logs();
        if (!logs.includes("listening on")) await new Promise((r) => setTimeout(r, 100));
      }
      expect(logs).toMatch(/affinetes: listening on/);
      expect((await instance.logs({ tail: 1 })).trim().split("\n")).toHaveLength(1);
    });

    it("lists its instances with their labels' facts", async () => {
      const instance = await start({ envName: "conformance-list" });
      const info = (await runtime.list()).find((i) => i.name === instance.name);
      expect(info).toMatchObject({
        runtime: runtime.kind,
        envName: "conformance-list",
        state: "running",
        keep: false,
      });
    });

    it("stop() removes the instance and is idempotent", async () => {
      const instance = await start();
      await Promise.all([instance.stop(), instance.stop()]);
      await instance.stop();
      expect(await instance.isRunning()).toBe(false);
      expect((await runtime.list()).find((i) => i.name === instance.name)).toBeUndefined();
    });

    it("reuses a running instance by name, and forceRecreate replaces it", async () => {
      const name = `conf-reuse-${process.pid}-${runtime.kind}`;
      const first = await start({ name });
      const again = await start({ name });
      expect(again.reused).toBe(true);
      expect(again.id).toBe(first.id);
      const fresh = await start({ name, forceRecreate: true });
      expect(fresh.reused).toBe(false);
      expect(fresh.id).not.toBe(first.id);
      expect(await first.isRunning()).toBe(false);
      expect(await health(fresh)).toBe(200);
    });

    it("finds the running instances of an environment by its pool name, from any client", async () => {
      const pool = `conf-find-${process.pid}-${runtime.kind}`;
      const a = await start({ name: `${pool}-0`, labels: { "affinetes.pool": pool } });
      const b = await start({ name: `${pool}-1`, labels: { "affinetes.pool": pool } });
      const found = await runtime.find(pool);
      expect(found.map((i) => i.id)).toEqual([a.id, b.id]);
      expect(found.every((i) => i.reused)).toBe(true);
      expect(found.every((i) => i.kind === "serve")).toBe(true);
      expect(await health(found[1] as ServingInstance)).toBe(200);
      expect((await runtime.list()).find((i) => i.id === a.id)?.pool).toBe(pool);
      expect(await runtime.find(`${pool}-missing`)).toEqual([]);
    });

    it("garbage collection leaves instances of live clients alone", async () => {
      const instance = await start();
      const removed = await runtime.garbageCollect();
      expect(removed).not.toContain(instance.name);
      expect(await instance.isRunning()).toBe(true);
    });

    it("reports an environment that fails to import as a start error carrying its logs, leaving nothing behind", async () => {
      const error = await runtime.start(target.brokenSpec(), { timeoutMs: 30_000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InstanceStartError);
      const message = (error as InstanceStartError).message;
      expect(message, message).toMatch(/exited/);
      expect(message, message).toMatch(/RuntimeError: broken on purpose/);
      const name = (error as InstanceStartError).instance;
      expect((await runtime.list()).find((i) => i.name === name)).toBeUndefined();
    });

    it("starts shell sandboxes: no server, commands in their working folder, files kept between commands", async () => {
      const workdir = target.sandboxWorkdir();
      const sandbox = await runtime.start({
        ...target.sandboxSpec(workdir),
        labels: { "affinetes.pool": "sandbox-pool" },
      });
      started.push(sandbox);
      expect(sandbox.kind).toBe("sandbox");
      // a sandbox has no endpoint() in its type; a caller that goes around the type still gets a clear error
      expect(() => (sandbox as unknown as ServingInstance).endpoint()).toThrow(/shell sandbox/);
      expect(await sandbox.isRunning()).toBe(true);
      expect(await sandbox.exec("pwd; echo $GREETING", { env: { GREETING: "hi" } })).toMatchObject({
        stdout: `${workdir}\nhi\n`,
        exitCode: 0,
      });
      await sandbox.exec("echo kept > note.txt");
      expect((await sandbox.exec("cat note.txt")).stdout).toBe("kept\n");
      const slow = await sandbox.exec("echo partial; sleep 30", { timeoutMs: 300 });
      expect(slow).toMatchObject({ stdout: "partial\n", timedOut: true });
      expect((await sandbox.exec("echo usable")).stdout).toBe("usable\n");
      // commands leave nothing of ours behind in the instance (the counting command may see its own)
      const ours = async () => (await sandbox.exec("ls -a /tmp | grep -c '^.affinetes-exec' || true")).stdout;
      const before = await ours();
      for (let i = 0; i < 3; i++) await sandbox.exec("true");
      expect(await ours()).toBe(before);
      expect((await runtime.find("sandbox-pool")).map((i) => i.id)).toEqual([sandbox.id]);
      // a process a command left behind, even in its own session, ends with the instance
      const seconds = String(30_000 + Math.floor(Math.random() * 9_999));
      await sandbox.exec(`(setsid sleep ${seconds} >/dev/null 2>&1 &)`);
      expect(await until(() => processesRunning(["sleep", seconds]) > 0, 10_000)).toBe(true);
      await sandbox.stop();
      expect(await sandbox.isRunning()).toBe(false);
      expect(await until(() => processesRunning(["sleep", seconds]) === 0, 10_000)).toBe(true);
      await expect(sandbox.exec("true")).rejects.toThrow();
      expect((await runtime.list()).find((i) => i.id === sandbox.id)).toBeUndefined();
    });

    const taskSpec = (command: string, extra: Partial<InstanceSpec> = {}): TaskSpec => ({
      ...target.sandboxSpec(target.sandboxWorkdir()),
      ...extra,
      serve: false,
      task: { command },
    });
    const marker = () => `/tmp/affinetes-ready-${process.pid}-${randomBytes(4).toString("hex")}`;

    it("runs tasks: started at once, wait() gives the exit code, the output stays in the logs", async () => {
      const task = await runtime.start(taskSpec("echo task-out; sleep 1; exit 3"), { timeoutMs: 60_000 });
      started.push(task);
      expect(task.kind).toBe("task");
      expect(await task.wait()).toBe(3);
      expect(await task.isRunning()).toBe(false);
      expect(await until(async () => (await task.logs()).includes("task-out"), 10_000)).toBe(true);
      expect(await task.publishedPorts()).toEqual({});
      expect((await runtime.attach(task.id))?.kind).toBe("task");
      await task.stop();
      expect((await runtime.list()).find((i) => i.id === task.id)).toBeUndefined();
    });

    it("readiness: a log line, a command succeeding, the exit", async () => {
      const line = await runtime.start(
        {
          ...taskSpec("echo booting; sleep 1; echo ready-now; sleep 60"),
          readiness: Wait.forLogLine("ready-now"),
        },
        { timeoutMs: 60_000 },
      );
      started.push(line);
      expect(await line.logs()).toContain("ready-now");
      const file = marker();
      const command = await runtime.start(
        { ...taskSpec(`sleep 1; touch ${file}; sleep 60`), readiness: Wait.forCommand(`test -e ${file}`) },
        { timeoutMs: 60_000 },
      );
      started.push(command);
      expect((await command.exec(`test -e ${file}`)).exitCode).toBe(0);
      await command.exec(`rm -f ${file}`);
      const once = await runtime.start(
        { ...taskSpec("sleep 1; exit 0"), readiness: Wait.forExit() },
        { timeoutMs: 60_000 },
      );
      started.push(once);
      expect(await once.isRunning()).toBe(false);
      expect(await once.wait()).toBe(0);
    });

    it("readiness that fails stops the start with a start error, leaving nothing behind", async () => {
      const failing = await runtime
        .start({ ...taskSpec("exit 4"), readiness: Wait.forExit() }, { timeoutMs: 60_000 })
        .catch((e: unknown) => e);
      expect(failing).toBeInstanceOf(InstanceStartError);
      expect((failing as Error).message).toMatch(/exited with code 4/);
      const never = await runtime
        .start(
          { ...target.sandboxSpec(target.sandboxWorkdir()), readiness: Wait.forCommand("false") },
          { timeoutMs: 10_000 },
        )
        .catch((e: unknown) => e);
      expect(never).toBeInstanceOf(InstanceStartError);
      expect((never as Error).message).toMatch(/not ready: false exited with code 1/);
      for (const error of [failing, never]) {
        const name = (error as InstanceStartError).instance;
        expect((await runtime.list()).find((i) => i.name === name)).toBeUndefined();
      }
    });

    it("honours an abort signal while starting", async () => {
      const controller = new AbortController();
      controller.abort();
      await expect(runtime.start(target.spec(), { signal: controller.signal })).rejects.toMatchObject({
        code: "ABORTED",
      });
    });
  });
}
