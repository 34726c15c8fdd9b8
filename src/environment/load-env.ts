import { z } from "zod";
import { ValidationError } from "../errors.js";
import { buildImageFromEnv } from "../image/build-image.js";
import { readEnvFolder } from "../image/env-folder.js";
import { imageRefSchema } from "../image/image-ref.js";
import type { DockerConnection } from "../runtime/docker/docker-connection.js";
import { DockerRuntime } from "../runtime/docker/docker-runtime.js";
import type { EnvType, Instance, InstanceSpec, RuntimeKind } from "../runtime/instance.js";
import { ProcessRuntime } from "../runtime/process/process-runtime.js";
import type { OperationOptions } from "../util/deadline.js";
import { parseMemorySize } from "../util/memory-size.js";
import { parseOptions } from "../util/validate.js";
import type { RemoteMethods } from "./environment.js";
import { Environment } from "./environment.js";
import { registerEnvironment, unregisterEnvironment } from "./registry.js";
import { remoteProxy } from "./remote-proxy.js";

/** Options of `loadEnv`: the Python affinetes' `load_env` options, camelCased. */
export interface LoadEnvOptions extends OperationOptions {
  /** Image to run (docker). */
  image?: string;
  /** Environment folder: run directly (process) or built into an image first (docker). */
  envPath?: string;
  /** Where to run. Default: docker for `image`; for `envPath`, docker when an engine answers, else process. */
  mode?: "docker" | "process";
  /** Environment variables for the instance. */
  envVars?: Record<string, string>;
  /** Overrides the detected type. */
  envType?: EnvType;
  /** Instance name; an instance of this name running the same image is reused. */
  containerName?: string;
  /** Remove an instance of the same name and start anew. */
  forceRecreate?: boolean;
  /** Pull the image first, falling back to the local image when the pull fails. */
  pull?: boolean;
  /** Memory limit: `"512m"`, `"1g"`, `"16Gi"` or bytes (docker). */
  memLimit?: string | number;
  /** Stop the instance on cleanup and at exit (default true). False keeps it running. */
  cleanup?: boolean;
  /** Number of instances. Only 1 until replicas arrive. */
  replicas?: number;
  /** Docker hosts. Only the local engine until remote hosts arrive. */
  hosts?: string[];
  /** Load-balancing strategy across replicas. */
  loadBalance?: "random" | "round_robin" | "least_busy";
  /** Client-side bound of a call without `timeoutMs` or `_timeout` (default 300 000 ms). */
  callTimeoutMs?: number;
  /** Base image when `envPath` is built for docker (see `buildImageFromEnv`). */
  baseImage?: string;
  /** The Docker engine; default from `DOCKER_HOST`, else the local socket. */
  docker?: DockerConnection;
  /** Python interpreter of the process runtime; default `AFFINETES_PYTHON` or `python3`. */
  python?: string;
}

/** What `loadEnv` returns: the environment, with its remote methods as properties. */
export type EnvironmentHandle<M extends object = RemoteMethods> = Environment & M;

const DEFAULT_CALL_TIMEOUT_MS = 300_000;

const schema = z
  .strictObject({
    image: imageRefSchema.optional(),
    envPath: z.string().min(1).optional(),
    mode: z.enum(["docker", "process"]).optional(),
    envVars: z.record(z.string(), z.string()).optional(),
    envType: z.enum(["function_based", "http_based"]).optional(),
    containerName: z.string().optional(),
    forceRecreate: z.boolean().optional(),
    pull: z.boolean().optional(),
    memLimit: z.union([z.string(), z.number()]).optional(),
    cleanup: z.boolean().optional(),
    replicas: z.literal(1, { message: "only 1 replica is supported so far" }).optional(),
    hosts: z
      .array(z.literal("localhost", { message: 'only "localhost" is supported so far' }))
      .max(1)
      .optional(),
    loadBalance: z.enum(["random", "round_robin", "least_busy"]).optional(),
    callTimeoutMs: z.number().int().positive().optional(),
    baseImage: imageRefSchema.optional(),
    docker: z.unknown().optional(),
    python: z.string().min(1).optional(),
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
 * Starts an environment and returns it ready for calls:
 *
 * ```ts
 * await using env = await loadEnv({ image: "calculator:latest" });
 * await env.add({ a: 1, b: 2 });
 * ```
 */
export async function loadEnv<M extends object = RemoteMethods>(
  options: LoadEnvOptions,
): Promise<EnvironmentHandle<M>> {
  parseOptions(schema, options, "loadEnv options");
  const memoryBytes =
    options.memLimit !== undefined ? parseMemorySize("memLimit", options.memLimit) : undefined;
  const mode = await resolveMode(options);
  const instance =
    mode === "process" ? await startProcess(options) : await startContainer(options, memoryBytes);
  const env = new Environment({
    name: instance.name,
    instance,
    cleanup: options.cleanup ?? true,
    defaultCallTimeoutMs: options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
    onClose: unregisterEnvironment,
  });
  registerEnvironment(env);
  return remoteProxy(env) as EnvironmentHandle<M>;
}

async function resolveMode(options: LoadEnvOptions): Promise<RuntimeKind> {
  if (options.mode) return options.mode;
  if (options.image !== undefined) return "docker";
  const docker = new DockerRuntime(options.docker ? { connection: options.docker } : {});
  try {
    await docker.ping(1_000);
    return "docker";
  } catch {
    return "process"; // the embedded default when no Docker engine answers
  }
}

function baseSpec(options: LoadEnvOptions, envName: string): InstanceSpec {
  return {
    envName,
    ...(options.containerName !== undefined ? { name: options.containerName } : {}),
    ...(options.envType ? { envType: options.envType } : {}),
    ...(options.envVars ? { envVars: options.envVars } : {}),
    forceRecreate: options.forceRecreate ?? false,
    keep: options.cleanup === false,
  };
}

async function startProcess(options: LoadEnvOptions): Promise<Instance> {
  if (options.image !== undefined && options.envPath === undefined) {
    throw new ValidationError(
      "mode",
      "the process runtime runs an environment folder, not an image: give envPath",
    );
  }
  const folder = await readEnvFolder(options.envPath as string, options.envType);
  const runtime = new ProcessRuntime(options.python ? { python: options.python } : {});
  return runtime.start({ ...baseSpec(options, folder.name), envPath: folder.path }, options);
}

async function startContainer(options: LoadEnvOptions, memoryBytes: number | undefined): Promise<Instance> {
  const runtime = new DockerRuntime(options.docker ? { connection: options.docker } : {});
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
  return runtime.start(
    {
      ...baseSpec(options, envName),
      image,
      pull: options.pull ?? false,
      restartPolicy: "always",
      ...(memoryBytes !== undefined ? { memoryBytes } : {}),
    },
    options,
  );
}

/** `registry/org/calculator:latest` -> `calculator`. */
function imageEnvName(image: string): string {
  const last = image.split("/").pop() ?? image;
  return last.split(/[:@]/)[0] || "env";
}
