import { z } from "zod";
import { PoolStartError, ValidationError } from "../errors.js";
import { buildImageFromEnv } from "../image/build-image.js";
import { readEnvFolder } from "../runtime/env-folder.js";
import { imageRefSchema } from "../image/image-ref.js";
import { logger } from "../logger.js";
import type { LoadBalanceStrategy } from "../pool/load-balancer.js";
import type { DockerConnection } from "../runtime/docker/docker-connection.js";
import { DockerRuntime } from "../runtime/docker/docker-runtime.js";
import type { EnvType, InstanceSpec, RuntimeKind, ServeSpec, ServingInstance } from "../runtime/instance.js";
import { validateInstanceName } from "../runtime/instance-name.js";
import { ProcessRuntime } from "../runtime/process/process-runtime.js";
import type { Runtime } from "../runtime/runtime.js";
import { resolveRuntimeKind } from "../runtime/resolve-runtime.js";
import type { NetworkPolicy } from "../runtime/network-policy.js";
import { networkPolicySchema } from "../runtime/network-policy.js";
import type { HostAddress } from "../host/host-address.js";
import { parseHostAddress } from "../host/host-address.js";
import type { HostOptions as SshHostOptions } from "../host/ssh-connection.js";
import type { OperationOptions } from "../util/deadline.js";
import { parseMemorySize } from "../util/memory-size.js";
import { parseOptions } from "../util/validate.js";
import type { RemoteMethods } from "./environment.js";
import type { EnvironmentHandle } from "./open-environment.js";
import { openEnvironment } from "./open-environment.js";
import { LABELS } from "../runtime/labels.js";
import { SlurmRuntime } from "../runtime/slurm/slurm-runtime.js";
import { randomBytes } from "node:crypto";
import { instanceToken, newAuthToken } from "../transport/auth-token.js";

/** Options of `loadEnv`: the Python affinetes' `load_env` options, camelCased. */
export interface LoadEnvOptions extends OperationOptions {
  /** Image to run (docker). */
  image?: string;
  /** Environment folder: run directly (process) or built into an image first (docker). */
  envPath?: string;
  /**
   * Where to run. Default: docker for `image`; for `envPath`, docker when an engine
   * answers, else process. `slurm` runs each replica as a Slurm job submitted from this
   * machine: `image` in a Docker container on its node, or `envPath`'s server on the node.
   */
  mode?: "docker" | "process" | "slurm";
  /** Slurm settings of mode `slurm`: `sbatchArgs` for every job (`--partition=gpu`, `--time=2:00:00`). */
  slurm?: { sbatchArgs?: string[] };
  /**
   * Environment variables for the instances. Each instance also gets a new random token in
   * `AFFINETES_AUTH_TOKEN`, which its method server requires of every call (this client and
   * later ones that connect by name send it); set that variable here to choose the token.
   */
  envVars?: Record<string, string>;
  /** Overrides the detected type. */
  envType?: EnvType;
  /** Instance name (with replicas, the prefix of `name-0` .. `name-N`); running instances of these names are reused. */
  containerName?: string;
  /** Remove instances of the same names and start anew. */
  forceRecreate?: boolean;
  /** Pull the image first, falling back to the local image when the pull fails. */
  pull?: boolean;
  /** Memory limit per instance: `"512m"`, `"1g"`, `"16Gi"` or bytes (docker). */
  memLimit?: string | number;
  /** CPU limit per instance, in cores: `1.5` or `"1.5"` (docker). */
  cpuLimit?: number | string;
  /** Stop the instances on cleanup and at exit (default true). False keeps them running. */
  cleanup?: boolean;
  /** Number of instances sharing the calls (default 1); they start concurrently. */
  replicas?: number;
  /**
   * Docker hosts the replicas are spread over, in order then round again: `localhost`,
   * `ssh://user@host[:port]`, `user@host` or a `~/.ssh/config` name (default: this machine).
   */
  hosts?: string[];
  /** How to reach and trust SSH hosts: keys, agent, known_hosts, `acceptNewHostKeys`. */
  ssh?: SshHostOptions;
  /** Receives progress lines of long steps (e.g. shipping the image to a remote host). */
  onProgress?: (line: string) => void;
  /** How calls are spread over replicas (default `random`; `least_busy` suits uneven work). */
  loadBalance?: LoadBalanceStrategy;
  /** Client-side bound of a call without `timeoutMs` or `_timeout` (default 300 000 ms). */
  callTimeoutMs?: number;
  /** Base image when `envPath` is built for docker (see `buildImageFromEnv`). */
  baseImage?: string;
  /** The Docker engine; default from `DOCKER_HOST`, else the local socket. */
  docker?: DockerConnection;
  /** Python interpreter of the process runtime; default `AFFINETES_PYTHON` or `python3`. */
  python?: string;
  /**
   * What every replica may reach on the network: `"full"` (default), `"none"` (nothing;
   * its method server still answers this client), or `{ allow: ["<host or CIDR>[:port]"] }`
   * (names resolve once, when each replica starts).
   */
  network?: NetworkPolicy;
}

const MAX_REPLICAS = 1024;

const schema = z
  .strictObject({
    image: imageRefSchema.optional(),
    envPath: z.string().min(1).optional(),
    mode: z.enum(["docker", "process", "slurm"]).optional(),
    slurm: z.strictObject({ sbatchArgs: z.array(z.string().min(1)).optional() }).optional(),
    envVars: z.record(z.string(), z.string()).optional(),
    envType: z.enum(["function_based", "http_based"]).optional(),
    containerName: z.string().optional(),
    forceRecreate: z.boolean().optional(),
    pull: z.boolean().optional(),
    memLimit: z.union([z.string(), z.number()]).optional(),
    cpuLimit: z
      .preprocess(
        (v) => (typeof v === "string" && /^\d+(\.\d+)?$/.test(v) ? Number(v) : v),
        z
          .number({ message: 'expected a number of cores, like 1.5 or "1.5"' })
          .positive("must be a positive number of cores"),
      )
      .optional(),
    cleanup: z.boolean().optional(),
    replicas: z.number().int().min(1).max(MAX_REPLICAS).optional(),
    hosts: z.array(z.string().min(1)).min(1).optional(),
    ssh: z
      .strictObject({
        keyFiles: z.array(z.string()).optional(),
        agent: z.string().optional(),
        knownHostsFile: z.string().optional(),
        acceptNewHostKeys: z.boolean().optional(),
        connectTimeoutMs: z.number().int().positive().optional(),
      })
      .optional(),
    loadBalance: z.enum(["random", "round_robin", "least_busy"]).optional(),
    callTimeoutMs: z.number().int().positive().optional(),
    baseImage: imageRefSchema.optional(),
    docker: z.unknown().optional(),
    python: z.string().min(1).optional(),
    network: networkPolicySchema.optional(),
    onProgress: z
      .custom<(line: string) => void>((v) => typeof v === "function", "must be a function")
      .optional(),
    timeoutMs: z.number().int().positive().optional(),
    signal: z.instanceof(AbortSignal).optional(),
  })
  .refine((o) => o.image !== undefined || o.envPath !== undefined, {
    message: "give an image or an envPath",
    path: ["image"],
  })
  .refine((o) => o.mode !== "process" || o.envPath !== undefined, {
    message: "the process runtime runs an environment folder: give envPath",
    path: ["envPath"],
  });

/**
 * Starts an environment — one instance, or `replicas` of them sharing the calls — and
 * returns it ready:
 *
 * ```ts
 * await using env = await loadEnv({ image: "calculator:latest", replicas: 4, loadBalance: "least_busy" });
 * await env.add({ a: 1, b: 2 });
 * ```
 */
export async function loadEnv<M extends object = RemoteMethods>(
  options: LoadEnvOptions,
): Promise<EnvironmentHandle<M>> {
  const parsed = parseOptions(schema, options, "loadEnv options");
  if (options.containerName !== undefined) validateInstanceName(options.containerName);
  const memoryBytes =
    options.memLimit !== undefined ? parseMemorySize("memLimit", options.memLimit) : undefined;
  const hosts = (options.hosts ?? ["localhost"]).map((h, i) => parseHostAddress(h, `hosts.${i}`));
  const mode = await resolveRuntimeKind({
    mode: options.mode,
    docker: options.docker,
    image: options.image !== undefined,
  });
  if (mode !== "docker" && hosts.some((h) => h.kind === "ssh")) {
    throw new ValidationError(
      "hosts",
      `mode ${mode} does not take hosts (${mode === "slurm" ? "Slurm places the jobs" : "it runs on this machine only"}); use mode docker for remote hosts`,
    );
  }
  const { runtimes, spec } = await prepare(options, mode, hosts, {
    ...(memoryBytes !== undefined ? { memoryBytes } : {}),
    ...(parsed.cpuLimit !== undefined ? { cpus: parsed.cpuLimit } : {}),
    ...(parsed.network !== undefined ? { network: parsed.network } : {}),
  });
  const name = options.containerName ?? `${spec.envName}-${randomBytes(4).toString("hex")}`;
  let instances: ServingInstance[];
  try {
    instances = await startReplicas(
      runtimes,
      // A generated name is new: no instance to look for.
      { ...spec, name, reuse: options.containerName !== undefined, labels: { [LABELS.pool]: name } },
      options.replicas ?? 1,
      options,
    );
  } finally {
    await Promise.all(runtimes.map((r) => r.close())); // instances hold their own share of a host
  }
  return openEnvironment<M>(name, instances, {
    cleanup: options.cleanup ?? true,
    loadBalance: options.loadBalance,
    callTimeoutMs: options.callTimeoutMs,
  });
}

/** The runtimes (one per host) and the spec every replica starts from (building the image first when needed). */
async function prepare(
  options: LoadEnvOptions,
  mode: RuntimeKind,
  hosts: readonly HostAddress[],
  limits: Pick<InstanceSpec, "memoryBytes" | "cpus" | "network">,
): Promise<{ runtimes: Runtime[]; spec: ServeSpec }> {
  const common: ServeSpec = {
    envName: "env",
    ...(limits.network !== undefined ? { network: limits.network } : {}),
    ...(options.envType ? { envType: options.envType } : {}),
    ...(options.envVars ? { envVars: options.envVars } : {}),
    forceRecreate: options.forceRecreate ?? false,
    keep: options.cleanup === false,
  };
  if (mode === "slurm") return prepareSlurm(options, common, limits);
  if (mode === "process") {
    if (options.envPath === undefined) {
      throw new ValidationError(
        "mode",
        "the process runtime runs an environment folder, not an image: give envPath",
      );
    }
    if (limits.memoryBytes !== undefined || limits.cpus !== undefined) {
      logger.warn("memLimit and cpuLimit are not enforced by the process runtime");
    }
    const folder = await readEnvFolder(options.envPath, options.envType);
    const runtime = new ProcessRuntime(options.python ? { python: options.python } : {});
    return { runtimes: [runtime], spec: { ...common, envName: folder.name, envPath: folder.path } };
  }
  const runtimes = hosts.map(
    (host) =>
      new DockerRuntime(
        host.kind === "ssh"
          ? {
              connection: { ssh: host.label, ...(options.ssh ? { sshOptions: options.ssh } : {}) },
              ...(options.onProgress ? { onProgress: options.onProgress } : {}),
            }
          : options.docker
            ? { connection: options.docker }
            : {},
      ),
  );
  let image = options.image;
  let envName = image ? imageEnvName(image) : "env";
  if (image === undefined) {
    const folder = await readEnvFolder(options.envPath as string, options.envType);
    envName = folder.name;
    image = await buildImageFromEnv({
      envPath: folder.path,
      imageTag: `affinetes-env/${folder.name}:latest`,
      quiet: true,
      ...(options.envType ? { envType: options.envType } : {}),
      ...(options.baseImage ? { baseImage: options.baseImage } : {}),
      ...(options.docker ? { docker: options.docker } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }
  return {
    runtimes,
    spec: { ...common, ...limits, envName, image, pull: options.pull ?? false, restartPolicy: "always" },
  };
}

/** Mode slurm: an image runs in a Docker container held by each job; an envPath's server runs on the node. */
async function prepareSlurm(
  options: LoadEnvOptions,
  common: ServeSpec,
  limits: Pick<InstanceSpec, "memoryBytes" | "cpus">,
): Promise<{ runtimes: Runtime[]; spec: ServeSpec }> {
  const sbatchArgs = options.slurm?.sbatchArgs ?? [];
  if (options.image !== undefined) {
    const runtime = new SlurmRuntime({ container: "docker", sbatchArgs });
    return {
      runtimes: [runtime],
      spec: { ...common, ...limits, envName: imageEnvName(options.image), image: options.image },
    };
  }
  const folder = await readEnvFolder(options.envPath as string, options.envType);
  const runtime = new SlurmRuntime({ sbatchArgs, ...(options.python ? { python: options.python } : {}) });
  return { runtimes: [runtime], spec: { ...common, ...limits, envName: folder.name, envPath: folder.path } };
}

/**
 * Starts the replicas concurrently. When any fails, the ones it started are stopped and
 * one error names each failure.
 */
async function startReplicas(
  runtimes: readonly Runtime[],
  spec: ServeSpec,
  replicas: number,
  options: OperationOptions,
): Promise<ServingInstance[]> {
  const specs = Array.from({ length: replicas }, (_, i) => ({
    ...spec,
    ...(replicas > 1 ? { name: `${spec.name}-${i}` } : {}),
    // Each instance answers only its owner: a token of its own, unless the caller chose one.
    authToken: instanceToken(spec) ?? newAuthToken(),
  }));
  // Replicas spread over the hosts in order, then round again.
  const results = await Promise.allSettled(
    specs.map((s, i) => (runtimes[i % runtimes.length] as Runtime).start(s, options)),
  );
  const started = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failures = results.flatMap((r, replica) =>
    r.status === "rejected"
      ? [{ replica, error: r.reason instanceof Error ? r.reason : new Error(String(r.reason)) }]
      : [],
  );
  if (failures.length === 0) return started;
  // Only what this call created: a reused instance was running before and stays.
  await Promise.allSettled(started.map((i) => (i.reused ? i.detach() : i.stop())));
  if (replicas === 1) throw failures[0]?.error;
  throw new PoolStartError(replicas, failures);
}

/** `registry/org/calculator:latest` -> `calculator`. */
function imageEnvName(image: string): string {
  const last = image.split("/").pop() ?? image;
  return last.split(/[:@]/)[0] || "env";
}
