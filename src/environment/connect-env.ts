import { z } from "zod";
import { NotFoundError } from "../errors.js";
import type { HostOptions as SshHostOptions } from "../host/ssh-connection.js";
import type { LoadBalanceStrategy } from "../pool/load-balancer.js";
import type { DockerConnection } from "../runtime/docker/docker-connection.js";
import type { ServingInstance } from "../runtime/instance.js";
import { closeAll, searchRuntimes } from "../runtime/resolve-runtime.js";
import { parseOptions } from "../util/validate.js";
import type { RemoteMethods } from "./environment.js";
import type { EnvironmentHandle } from "./open-environment.js";
import { openEnvironment } from "./open-environment.js";

/** Options of `connectEnv`. */
export interface ConnectEnvOptions {
  /**
   * Where to look; default `AFFINETES_RUNTIME`, else docker (when an engine answers),
   * process, and Slurm jobs submitted from here.
   */
  mode?: "docker" | "process" | "slurm";
  loadBalance?: LoadBalanceStrategy;
  /** Client-side bound of a call without `timeoutMs` or `_timeout` (default 300 000 ms). */
  callTimeoutMs?: number;
  /** The Docker engine; default from `DOCKER_HOST`, else the local socket. */
  docker?: DockerConnection;
  /** Remote Docker hosts to search too (`ssh://user@host:port` or ~/.ssh/config names). */
  hosts?: string[];
  /** How to reach and trust the SSH hosts. */
  ssh?: SshHostOptions;
}

/** Which runtimes to look at. */
export type RuntimeChoice = Pick<ConnectEnvOptions, "mode" | "docker" | "hosts" | "ssh">;

const schema = z.strictObject({
  mode: z.enum(["docker", "process", "slurm"]).optional(),
  loadBalance: z.enum(["random", "round_robin", "least_busy"]).optional(),
  callTimeoutMs: z.number().int().positive().optional(),
  docker: z.unknown().optional(),
  hosts: z.array(z.string().min(1)).optional(),
  ssh: z.record(z.string(), z.unknown()).optional(),
});

/**
 * Connects to an environment that is already running — started by `loadEnv`, `afs run`
 * or another process — by its name. The connection does not own it: `cleanup()` only
 * closes connections; `stop()` removes it. Throws `NotFoundError` listing the running
 * environments when there is none of that name.
 */
export async function connectEnv<M extends object = RemoteMethods>(
  name: string,
  options: ConnectEnvOptions = {},
): Promise<EnvironmentHandle<M>> {
  parseOptions(schema, options, "connectEnv options");
  const runtimes = await searchRuntimes(options);
  const instances: ServingInstance[] = [];
  try {
    for (const runtime of runtimes) {
      for (const instance of await runtime.find(name)) {
        if (instance.kind === "serve") instances.push(instance);
        else await instance.detach(); // a sandbox or task of that pool: nothing to call
      }
    }
  } catch (err) {
    await Promise.all(instances.map((i) => i.detach()));
    throw err;
  } finally {
    await closeAll(runtimes); // the instances hold their own share of a host
  }
  if (instances.length) {
    return openEnvironment<M>(name, instances, {
      cleanup: false,
      loadBalance: options.loadBalance,
      callTimeoutMs: options.callTimeoutMs,
    });
  }
  const running = await runningEnvironmentNames(options);
  const hint = running.length ? ` Running: ${running.join(", ")}.` : " No environment is running.";
  const unreachable =
    options.mode !== "process" && !runtimes.some((r) => r.kind === "docker")
      ? " (The Docker engine did not answer: only process environments were searched.)"
      : "";
  throw new NotFoundError("environment", name, `Environment not found: ${name}.${hint}${unreachable}`);
}

/** Names of the running environments (of any client), on the runtimes `options` allows. */
export async function runningEnvironmentNames(options: RuntimeChoice = {}): Promise<string[]> {
  const names = new Set<string>();
  const runtimes = await searchRuntimes(options);
  try {
    for (const runtime of runtimes) {
      for (const info of await runtime.list()) if (info.state === "running") names.add(info.pool);
    }
  } finally {
    await closeAll(runtimes);
  }
  return [...names].sort();
}
