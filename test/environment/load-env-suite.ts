import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CallAbortedError,
  CallTimeoutError,
  EnvironmentClosedError,
  InvalidArgumentsError,
  MethodNotFoundError,
  RemoteError,
  NotFoundError,
  cleanupAllEnvironments,
  connectEnv,
  getEnvironment,
  listActiveEnvironments,
  loadEnv,
} from "../../src/index.js";
import type { EnvironmentHandle, LoadEnvOptions } from "../../src/index.js";

export interface LoadEnvTarget {
  mode: "docker" | "process" | "slurm";
  /** Options that load the named example ("calculator" or "actor") in this mode. */
  options: (example: "calculator" | "actor", extra?: Partial<LoadEnvOptions>) => LoadEnvOptions;
  /** Whether the instance with this id still exists. */
  exists: (instanceId: string) => Promise<boolean>;
  /** Prepares the examples (e.g. builds their images). */
  setup?: () => Promise<void>;
}

/** What a user does with `loadEnv`, the same on every runtime. */
export function loadEnvSuite(target: LoadEnvTarget): void {
  describe(`loadEnv in ${target.mode} mode`, () => {
    let calc: EnvironmentHandle;
    let actor: EnvironmentHandle;

    beforeAll(async () => {
      await target.setup?.();
      [calc, actor] = await Promise.all([
        loadEnv(target.options("calculator")),
        loadEnv(target.options("actor", { envVars: { API_KEY: "secret-key" } })),
      ]);
    });

    afterAll(async () => {
      await cleanupAllEnvironments();
    });

    it("calls module functions with kwargs, positional args and the explicit form", async () => {
      expect(calc.mode).toBe(target.mode);
      expect(await calc.add({ a: 1, b: 2 })).toBe(3);
      expect(await calc.add([3, 4])).toBe(7);
      expect(await calc.call("add", { a: 1.5, b: 2 }, { timeoutMs: 5_000 })).toBe(3.5);
      expect(await calc.stats({ values: [1, 2, 3] })).toEqual({ mean: 2, std: Math.sqrt(2 / 3), count: 3 });
    });

    it("calls Actor methods, async and sync, and the Actor sees the env vars given at start", async () => {
      expect(await actor.whoami()).toEqual({ api_key: "secret-key", calls: 0 });
      expect(await actor.evaluate({ task_type: "sat" })).toEqual({
        task_type: "sat",
        score: 1,
        api_key_set: true,
      });
      expect(await actor.work({ seconds: 0.01 })).toBe(0.01);
    });

    it("runs many calls at once on one instance", async () => {
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => calc.add({ a: i, b: 1 })));
      expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    });

    it("lists methods with signatures", async () => {
      const methods = await calc.listMethods();
      expect(methods.map((m) => m.name).sort()).toEqual(["add", "divide", "stats"]);
      expect(methods.find((m) => m.name === "add")).toMatchObject({
        source: "module",
        endpoint: "POST /add",
      });
      expect(methods.find((m) => m.name === "add")?.signature).toMatch(/^\(a: float, b: float\)/);
    });

    it("a method that raises arrives as RemoteError with the remote traceback", async () => {
      const error = await calc.divide({ a: 1, b: 0 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RemoteError);
      const remote = error as RemoteError;
      expect(remote.errorType).toBe("ZeroDivisionError");
      expect(remote.remoteMessage).toBe("division by zero");
      expect(remote.remoteTraceback).toMatch(
        /Traceback \(most recent call last\):[\s\S]*env\.py[\s\S]*in divide/,
      );
      expect(remote.method).toBe("divide");
      const actorError = await actor.fail({ message: "custom" }).catch((e: unknown) => e);
      expect((actorError as RemoteError).message).toMatch(/RuntimeError: custom/);
    });

    it("an unknown method is MethodNotFoundError listing the available ones", async () => {
      const error = await calc.multiply({ a: 1, b: 2 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MethodNotFoundError);
      expect((error as MethodNotFoundError).available).toEqual(
        expect.arrayContaining(["add", "divide", "stats"]),
      );
      expect((error as Error).message).toMatch(/Available methods: .*add/);
    });

    it("wrong arguments are InvalidArgumentsError with Python's message", async () => {
      const error = await calc.add({ a: 1, c: 2 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentsError);
      expect((error as Error).message).toMatch(/add: Invalid arguments for add\(a: float, b: float\)/);
    });

    it("bounds calls with _timeout (seconds) and timeoutMs on the client, and kwargs.timeout on the server", async () => {
      const viaUnderscore = await actor.evaluate({ delay: 5, _timeout: 0.2 }).catch((e: unknown) => e);
      expect(viaUnderscore).toBeInstanceOf(CallTimeoutError);
      expect((viaUnderscore as CallTimeoutError).side).toBe("client");
      expect((viaUnderscore as CallTimeoutError).timeoutMs).toBe(200);
      const viaOption = await actor
        .call("evaluate", { delay: 5 }, { timeoutMs: 150 })
        .catch((e: unknown) => e);
      expect(viaOption).toMatchObject({ name: "CallTimeoutError", side: "client", timeoutMs: 150 });
      const serverSide = await actor.evaluate({ delay: 5, timeout: 0.2 }).catch((e: unknown) => e);
      expect(serverSide).toMatchObject({ name: "CallTimeoutError", side: "server" });
      // and the environment keeps serving
      expect(await calc.add({ a: 2, b: 2 })).toBe(4);
    });

    it("a call can be aborted with a signal", async () => {
      const controller = new AbortController();
      const pending = actor.call("evaluate", { delay: 5 }, { signal: controller.signal });
      setTimeout(() => controller.abort(), 50);
      await expect(pending).rejects.toBeInstanceOf(CallAbortedError);
    });

    it("the proxy is not a thenable and hides private names", async () => {
      expect((calc as unknown as { then?: unknown }).then).toBeUndefined();
      expect((calc as unknown as { _private_helper?: unknown })._private_helper).toBeUndefined();
      expect(calc.isReady()).toBe(true);
    });

    it("registers environments by name", () => {
      expect(listActiveEnvironments()).toEqual(expect.arrayContaining([calc.name, actor.name]));
      expect(getEnvironment(calc.name)?.endpoint).toBe(calc.endpoint);
    });

    it("reuses a running instance by containerName, and forceRecreate replaces it", async () => {
      const containerName = `reuse-${target.mode}-${process.pid}`;
      const first = await loadEnv(target.options("calculator", { containerName }));
      const second = await loadEnv(target.options("calculator", { containerName }));
      expect(second.reused).toBe(true);
      expect(second.instanceId).toBe(first.instanceId);
      const third = await loadEnv(target.options("calculator", { containerName, forceRecreate: true }));
      expect(third.reused).toBe(false);
      expect(third.instanceId).not.toBe(first.instanceId);
      expect(await target.exists(first.instanceId)).toBe(false);
      expect(await third.add({ a: 1, b: 1 })).toBe(2);
      await third.cleanup();
      expect(await target.exists(third.instanceId)).toBe(false);
    });

    it("connectEnv reaches a running environment by name without owning it", async () => {
      const containerName = `connect-${target.mode}-${process.pid}`;
      await using owner = await loadEnv(target.options("calculator", { containerName, replicas: 2 }));
      const other = await connectEnv(containerName, { mode: target.mode });
      expect(other.replicas).toBe(2);
      expect(await other.add({ a: 40, b: 2 })).toBe(42);
      await other.cleanup(); // closes connections only
      expect(await owner.add({ a: 1, b: 1 })).toBe(2);
      const missing = await connectEnv("no-such-env", { mode: target.mode }).catch((e: unknown) => e);
      expect(missing).toBeInstanceOf(NotFoundError);
      expect((missing as Error).message).toMatch(new RegExp(`Running: .*${containerName}`));
    });

    it("cleanup() removes the instance, is idempotent, and later calls fail clearly", async () => {
      await using env = await loadEnv(target.options("calculator"));
      const id = env.instanceId;
      await Promise.all([env.cleanup(), env.cleanup()]);
      expect(env.isReady()).toBe(false);
      expect(await target.exists(id)).toBe(false);
      expect(listActiveEnvironments()).not.toContain(env.name);
      await expect(env.add({ a: 1, b: 2 })).rejects.toBeInstanceOf(EnvironmentClosedError);
    });

    it("await using cleans up at the end of the scope", async () => {
      let id = "";
      {
        await using env = await loadEnv(target.options("calculator"));
        id = env.instanceId;
        expect(await env.add({ a: 1, b: 1 })).toBe(2);
      }
      expect(await target.exists(id)).toBe(false);
    });

    it("cleanup: false keeps the instance running; stop() removes it", async () => {
      const env = await loadEnv(target.options("calculator", { cleanup: false }));
      await env.cleanup();
      expect(await target.exists(env.instanceId)).toBe(true);
      await env.stop();
      expect(await target.exists(env.instanceId)).toBe(false);
    });
  });
}
