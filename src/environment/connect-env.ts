import { z } from "zod";
import { NotFoundError } from "../errors.js";
import type { LoadBalanceStrategy } from "../pool/load-balancer.js";
import type { DockerConnection } from "../runtime/docker/docker-connection.js";
import { DockerRuntime } from "../runtime/docker/docker-runtime.js";
import type { Instance } from "../runtime/instance.js";
import { ProcessRuntime } from "../runtime/process/process-runtime.js";
import type { Runtime } from "../runtime/runtime.js";
import { parseOptions } from "../util/validate.js";
import type { RemoteMethods } from "./environment.js";
import type { EnvironmentHandle } from "./open-environment.js";
import { openEnvironment } from "./open-environment.js";

/** Options of `connectEnv`. */
export interface ConnectEnvOptions {
  /** Where to look; default: docker (when an engine answers), then process. */
  mode?: "docker" | "process";
  loadBalance?: LoadBalanceStrategy;
  /** Client-side bound of a call without `timeoutMs` or `_timeout` (default 300 000 ms). */
  callTimeoutMs?: number;
  /** The Docker engine; default from `DOCKER_HOST`, else the local socket. */
  docker?: DockerConnection;
}

const schema = z.strictObject({
  mode: z.enum(["docker", "process"]).optional(),
  loadBalance: z.enum(["random", "round_robin", "least_busy"]).optional(),
  callTimeoutMs: z.number().int().positive().optional(),
  docker: z.unknown().optional(),
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
  for (const runtime of await runtimesFor(options)) {
    const instances: Instance[] = await runtime.find(name);
    if (instances.length) {
      return openEnvironment<M>(name, instances, {
        cleanup: false,
        loadBalance: options.loadBalance,
        callTimeoutMs: options.callTimeoutMs,
      });
    }
  }
  const running = await runningEnvironmentNames(options);
  const hint = running.length ? ` Running: ${running.join(", ")}.` : " No environment is running.";
  const searched = await runtimesFor(options);
  const unreachable =
    options.mode !== "process" && !searched.some((r) => r.kind === "docker")
      ? " (The Docker engine did not answer: only process environments were searched.)"
      : "";
  throw new NotFoundError("environment", name, `Environment not found: ${name}.${hint}${unreachable}`);
}

/** Names of the running environments (of any client), on the runtimes `options` allows. */
export async function runningEnvironmentNames(
  options: Pick<ConnectEnvOptions, "mode" | "docker"> = {},
): Promise<string[]> {
  const names = new Set<string>();
  for (const runtime of await runtimesFor(options)) {
    for (const info of await runtime.list()) if (info.state === "running") names.add(info.pool);
  }
  return [...names].sort();
}

/** The runtimes to search: docker only when its engine answers. */
export async function runtimesFor(options: Pick<ConnectEnvOptions, "mode" | "docker">): Promise<Runtime[]> {
  const runtimes: Runtime[] = [];
  if (options.mode !== "process") {
    const docker = new DockerRuntime(options.docker ? { connection: options.docker } : {});
    const answers = await docker.ping(2_000).then(
      () => true,
      (err: unknown) => {
        if (options.mode === "docker") throw err; // asked for docker: say it does not answer
        return false;
      },
    );
    if (answers) runtimes.push(docker);
  }
  if (options.mode !== "docker") runtimes.push(new ProcessRuntime());
  return runtimes;
}
