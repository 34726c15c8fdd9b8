import { z } from "zod";
import { networkPolicySchema } from "../runtime/network-policy.js";

/** The container types a start request may ask for. */
export const CONTAINER_TYPES = [
  "docker",
  "local",
  "bubblewrap",
  "apptainer",
  "singularity",
  "enroot",
] as const;

/**
 * The caps of a request, so that a value the system below cannot hold is a 400 naming
 * the field, not a 500 (or a timer that overflows and fires at once).
 */
export const REQUEST_LIMITS = {
  /** A command's or an instance's timeout (seconds): one day. */
  maxTimeoutS: 86_400,
  /** run_id, container_name, a predefined environment's name. */
  maxIdLength: 200,
  /**
   * A command, in UTF-8 bytes. It travels as one argument of `sh -c`, and Linux caps one
   * argument at 128 KiB: this leaves room for the wrapper and the working directory.
   */
  maxCommandBytes: 100 * 1024,
  maxPathBytes: 4096,
  maxImageLength: 512,
  maxEnvEntries: 256,
  maxEnvNameLength: 256,
  maxEnvValueBytes: 64 * 1024,
  /** All of a request's variables together (names and values). */
  maxEnvTotalBytes: 512 * 1024,
  maxResourceKeys: 32,
  maxResourceAmount: 1_000_000,
  /** The smallest `cpus` and `memory_gb` (GiB) an instance may ask for: what an engine accepts. */
  minCpus: 0.01,
  minMemoryGb: 0.01,
  maxSbatchArgs: 64,
  maxSbatchArgLength: 1024,
  /** A whole rollout request body, in bytes. */
  maxBodyBytes: 2 * 1024 * 1024,
} as const;

const L = REQUEST_LIMITS;

const bytes = (s: string) => Buffer.byteLength(s, "utf8");

/** Whether `s` holds a control character (C0 or DEL): a name or path never needs one. */
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** Text with no NUL byte: C strings (argv, env, paths) and PostgreSQL end at one. */
function text(maxBytes: number, what: string) {
  return z
    .string()
    .refine((s) => !s.includes("\0"), { message: `${what} must not contain NUL bytes` })
    .refine((s) => bytes(s) <= maxBytes, { message: `${what} is longer than ${maxBytes} bytes` });
}

/** A name or id: printable, no control characters. */
function identifier(what: string) {
  return z
    .string()
    .min(1)
    .max(L.maxIdLength)
    .refine((s) => !hasControl(s), { message: `${what} must not contain control characters` });
}

const seconds = (what: string) =>
  z
    .number()
    .positive()
    .max(L.maxTimeoutS, { message: `${what} is at most ${L.maxTimeoutS} seconds (24 h)` });

const path = (what: string) =>
  text(L.maxPathBytes, what)
    .min(1)
    .refine((s) => !hasControl(s), { message: `${what} must not contain control characters` });

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESOURCE_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * A record whose keys match `pattern`: checked here rather than by a key schema, so the
 * error names the key and says what a key must be (zod's own says "Invalid key in record").
 * (A `__proto__` key never arrives: the body parser refuses it, and zod drops it.)
 */
function keyedRecord<V extends z.ZodType>(value: V, pattern: RegExp, what: string) {
  return z.record(z.string(), value).superRefine((record, ctx) => {
    for (const key of Object.keys(record)) {
      if (!pattern.test(key))
        ctx.addIssue({ code: "custom", path: [key], message: `${JSON.stringify(key)} is not ${what}` });
    }
  });
}

/** Environment variables: identifiers to strings, bounded in count and size. */
export const envSchema = keyedRecord(
  text(L.maxEnvValueBytes, "an environment variable's value"),
  ENV_NAME,
  "a variable name (identifiers: [A-Za-z_][A-Za-z0-9_]*)",
)
  .refine((env) => Object.keys(env).length <= L.maxEnvEntries, {
    message: `at most ${L.maxEnvEntries} environment variables`,
  })
  .refine(
    (env) =>
      Object.entries(env).reduce((total, [k, v]) => total + bytes(k) + bytes(v) + 2, 0) <= L.maxEnvTotalBytes,
    { message: `environment variables take at most ${L.maxEnvTotalBytes} bytes together` },
  );

const resources = keyedRecord(
  z.number().nonnegative().max(L.maxResourceAmount),
  RESOURCE_KEY,
  "a resource key (identifiers of at most 64 characters)",
)
  .refine((r) => Object.keys(r).length <= L.maxResourceKeys, {
    message: `at most ${L.maxResourceKeys} resource keys`,
  })
  // What the instance runs with: an engine refuses less (and 0 would mean "no limit")
  .refine((r) => r.cpus === undefined || r.cpus >= L.minCpus, {
    message: `cpus is at least ${L.minCpus}`,
    path: ["cpus"],
  })
  .refine((r) => r.memory_gb === undefined || r.memory_gb >= L.minMemoryGb, {
    message: `memory_gb is at least ${L.minMemoryGb}`,
    path: ["memory_gb"],
  });

const containerType = z.enum(CONTAINER_TYPES);

/** The fields of an environment configuration; in a predefined entry or an override, each is optional. */
const environmentFields = {
  container_type: containerType,
  image: z
    .string()
    .min(1)
    .max(L.maxImageLength)
    .refine((s) => !/\s/.test(s) && !hasControl(s), {
      message: "an image reference has no spaces or control characters",
    })
    .optional(),
  /**
   * The instance's working folder: an absolute path, or for the confined types a path
   * relative to the sandbox's own folder (the service checks which, per container type).
   */
  cwd: path("cwd").optional(),
  env: envSchema.optional(),
  timeout: seconds("timeout").optional(),
  resources: resources.optional(),
  /** What the instance may reach: "none", "full", or {"allow": ["host[:port]", ...]}. */
  network: networkPolicySchema.optional(),
  /** sbatch arguments of this instance's job (`--runner slurm`), after the server's `--sbatch-arg`s. */
  sbatch_args: z
    .array(
      text(L.maxSbatchArgLength, "an sbatch argument")
        .min(1)
        .refine((a) => !/[\r\n]/.test(a), { message: "an sbatch argument is one line" }),
    )
    .max(L.maxSbatchArgs)
    .optional(),
};

const environmentConfig = z.strictObject(environmentFields);

/** An entry of `--environments envs.json`. */
export const predefinedEnvironment = environmentConfig;

/**
 * `environment_config` as an object: a full configuration, or one naming a predefined
 * entry (`name`) and overriding some of its fields.
 */
const environmentObject = z
  .strictObject({
    name: identifier("name").optional(),
    ...environmentFields,
    container_type: containerType.optional(),
  })
  .refine((c) => c.name !== undefined || c.container_type !== undefined, {
    message: "give container_type, or name a predefined environment (--environments)",
    path: ["container_type"],
  });

/** `POST /start_instance`: the nested form, or the flat one (`container_image`, `container_type`, ...). */
export const startSchema = z
  .strictObject({
    run_id: identifier("run_id"),
    container_name: identifier("container_name").optional(),
    // The string form names a predefined entry: `"swe"` is `{"name": "swe"}` (one schema, precise errors).
    environment_config: z
      .preprocess((v) => (typeof v === "string" ? { name: v } : v), environmentObject)
      .optional(),
    container_image: environmentFields.image,
    container_type: containerType.optional(),
    timeout: seconds("timeout").optional(),
    resources: resources.optional(),
  })
  .refine((b) => b.environment_config !== undefined || b.container_type !== undefined, {
    message: "give environment_config (or the flat container_type and container_image)",
    path: ["environment_config"],
  });

export const executeSchema = z.strictObject({
  run_id: identifier("run_id"),
  cmd: text(L.maxCommandBytes, "cmd").min(1),
  timeout: seconds("timeout").optional(),
  /** Where the command runs; a relative path is taken from the instance's working folder. */
  cwd: path("cwd").optional(),
  env: envSchema.optional(),
});

export const closeSchema = z.strictObject({ run_id: identifier("run_id") });

export const statsQuerySchema = z.strictObject({
  run_id: identifier("run_id").optional(),
  container_name: identifier("container_name").optional(),
});

export type StartRequest = z.output<typeof startSchema>;
export type EnvironmentConfig = z.output<typeof environmentConfig>;
export type ExecuteRequest = z.output<typeof executeSchema>;
