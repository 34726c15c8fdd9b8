import { ValidationError } from "../errors.js";
import { parseHostAddress } from "../host/host-address.js";
import type { HostOptions as SshHostOptions } from "../host/ssh-connection.js";
import type { DockerConnection } from "./docker/docker-connection.js";
import type { DockerRuntimeOptions } from "./docker/docker-runtime.js";
import { DockerRuntime } from "./docker/docker-runtime.js";
import type { RuntimeKind } from "./instance-spec.js";
import { ProcessRuntime } from "./process/process-runtime.js";
import type { Runtime } from "./runtime.js";
import type { RuntimeImages } from "./runtime-images.js";
import { SlurmRuntime } from "./slurm/slurm-runtime.js";

/** The environment variable naming the runtime when no option does: `docker`, `process` or `slurm`. */
export const RUNTIME_VARIABLE = "AFFINETES_RUNTIME";

const KINDS: readonly RuntimeKind[] = ["docker", "process", "slurm"];
/** How long the probe waits for a Docker engine to answer. */
const PROBE_TIMEOUT_MS = 1_000;
/** How long the search of running instances waits for the local engine; remote hosts must answer. */
const SEARCH_TIMEOUT_MS = 2_000;
const REMOTE_TIMEOUT_MS = 10_000;

/** What a caller knows of the runtime it wants; each field feeds one step of the chain. */
export interface RuntimeRequest {
  /** The explicit choice (an option, a flag). */
  mode?: RuntimeKind | undefined;
  /** The local Docker engine; default from `DOCKER_HOST`, else the local socket. */
  docker?: DockerConnection | undefined;
}

/**
 * The one chain that says which runtime to use, in order: the explicit `mode`, else
 * `AFFINETES_RUNTIME`, else (with `image`: only Docker runs images) docker, else a probe:
 * docker when its engine answers, else process, the embedded default. Slurm is never
 * probed for: it is used when asked.
 */
export async function resolveRuntimeKind(
  request: RuntimeRequest & { image?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): Promise<RuntimeKind> {
  const asked = request.mode ?? runtimeFromEnv(env);
  if (asked) return asked;
  if (request.image) return "docker";
  return (await answeringDocker({ ...connectionOf(request) }, PROBE_TIMEOUT_MS).then(close))
    ? "docker"
    : "process";
}

/** The runtime named by `AFFINETES_RUNTIME`, when set; a value that is no runtime is refused. */
export function runtimeFromEnv(env: NodeJS.ProcessEnv = process.env): RuntimeKind | undefined {
  const value = env[RUNTIME_VARIABLE]?.trim();
  if (!value) return undefined;
  if (!(KINDS as readonly string[]).includes(value))
    throw new ValidationError(
      RUNTIME_VARIABLE,
      `must be one of ${KINDS.join(", ")}, not ${JSON.stringify(value)}`,
    );
  return value as RuntimeKind;
}

/** The Docker runtime of `options` when its engine answers within `timeoutMs`; else undefined (and closed). */
export async function answeringDocker(
  options: DockerRuntimeOptions,
  timeoutMs: number,
): Promise<DockerRuntime | undefined> {
  const docker = new DockerRuntime(options);
  try {
    await docker.ping(timeoutMs);
    return docker;
  } catch {
    await docker.close();
    return undefined;
  }
}

/** The runtime whose images `Image.build` and `buildImageFromEnv` make: a Docker engine. Close it after. */
export function imageRuntime(connection?: DockerConnection): Runtime & { images: RuntimeImages } {
  return new DockerRuntime(connection ? { connection } : {});
}

/** Where to look for running instances: `RuntimeRequest` and remote Docker hosts. */
export interface SearchRequest extends RuntimeRequest {
  /** Remote Docker hosts to search too (`ssh://user@host:port` or ~/.ssh/config names). */
  hosts?: readonly string[] | undefined;
  ssh?: SshHostOptions | undefined;
}

/**
 * The runtimes holding instances to look at, by the same chain: the one asked for
 * (option, then `AFFINETES_RUNTIME`), else every one that answers: each remote host given
 * (which must answer), Slurm when jobs were submitted from here, the local Docker engine
 * when it answers, and the process runtime. Release them with `closeAll`.
 */
export async function searchRuntimes(request: SearchRequest): Promise<Runtime[]> {
  const mode = request.mode ?? runtimeFromEnv();
  const slurm = new SlurmRuntime();
  if (mode === "slurm") return [slurm];
  const runtimes: Runtime[] = [];
  try {
    for (const spec of request.hosts ?? []) {
      const address = parseHostAddress(spec, "hosts");
      if (address.kind === "local") continue;
      const remote = new DockerRuntime({
        connection: { ssh: address.label, ...(request.ssh ? { sshOptions: request.ssh } : {}) },
      });
      runtimes.push(remote);
      await remote.ping(REMOTE_TIMEOUT_MS);
    }
    if (mode === undefined && (await slurm.hasInstances())) runtimes.push(slurm);
    if (mode === "docker") {
      // asked for docker: say it does not answer
      const docker = new DockerRuntime(connectionOf(request));
      runtimes.push(docker);
      await docker.ping(SEARCH_TIMEOUT_MS);
    } else if (mode === undefined) {
      const docker = await answeringDocker(connectionOf(request), SEARCH_TIMEOUT_MS);
      if (docker) runtimes.push(docker);
    }
  } catch (err) {
    await closeAll(runtimes);
    throw err;
  }
  if (mode !== "docker") runtimes.push(new ProcessRuntime());
  return runtimes;
}

/** Releases runtimes (and their share of SSH hosts). */
export async function closeAll(runtimes: readonly Runtime[]): Promise<void> {
  await Promise.all(runtimes.map((r) => r.close()));
}

function connectionOf(request: RuntimeRequest): DockerRuntimeOptions {
  return request.docker ? { connection: request.docker } : {};
}

async function close(docker: DockerRuntime | undefined): Promise<boolean> {
  await docker?.close();
  return docker !== undefined;
}
