import { z } from "zod";

/** The container types a start request may ask for. */
export const CONTAINER_TYPES = [
  "docker",
  "local",
  "bubblewrap",
  "apptainer",
  "singularity",
  "enroot",
] as const;

const containerType = z.enum(CONTAINER_TYPES);
const resources = z.record(
  z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "resource keys are identifiers"),
  z.number().nonnegative(),
);

/** The fields of an environment configuration; in a predefined entry or an override, each is optional. */
const environmentFields = {
  container_type: containerType,
  image: z.string().min(1).optional(),
  cwd: z.string().min(1).optional(),
  env: z.record(z.string(), z.string()).optional(),
  timeout: z.number().positive().optional(),
  resources: resources.optional(),
  /** sbatch arguments of this instance's job (`--runner slurm`), after the server's `--sbatch-arg`s. */
  sbatch_args: z.array(z.string().min(1)).optional(),
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
    name: z.string().min(1).optional(),
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
    run_id: z.string().min(1).max(200),
    container_name: z.string().min(1).optional(),
    // The string form names a predefined entry: `"swe"` is `{"name": "swe"}` (one schema, precise errors).
    environment_config: z
      .preprocess((v) => (typeof v === "string" ? { name: v } : v), environmentObject)
      .optional(),
    container_image: z.string().min(1).optional(),
    container_type: containerType.optional(),
    timeout: z.number().positive().optional(),
    resources: resources.optional(),
  })
  .refine((b) => b.environment_config !== undefined || b.container_type !== undefined, {
    message: "give environment_config (or the flat container_type and container_image)",
    path: ["environment_config"],
  });

export const executeSchema = z.strictObject({
  run_id: z.string().min(1),
  cmd: z.string().min(1),
  timeout: z.number().positive().optional(),
  cwd: z.string().min(1).optional(),
  env: z.record(z.string(), z.string()).optional(),
});

export const closeSchema = z.strictObject({ run_id: z.string().min(1) });

export const statsQuerySchema = z.strictObject({
  run_id: z.string().min(1).optional(),
  container_name: z.string().min(1).optional(),
});

export type StartRequest = z.output<typeof startSchema>;
export type EnvironmentConfig = z.output<typeof environmentConfig>;
export type ExecuteRequest = z.output<typeof executeSchema>;
