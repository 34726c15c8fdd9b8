import { z } from "zod";

const containerType = z.enum(["docker", "local", "bubblewrap", "apptainer", "singularity", "enroot"]);
const resources = z.record(
  z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "resource keys are identifiers"),
  z.number().nonnegative(),
);

const environmentConfig = z.strictObject({
  container_type: containerType,
  image: z.string().min(1).optional(),
  cwd: z.string().min(1).optional(),
  env: z.record(z.string(), z.string()).optional(),
  timeout: z.number().positive().optional(),
  resources: resources.optional(),
});

/** `POST /start_instance`: the nested form, or the flat one (`container_image`, `container_type`, ...). */
export const startSchema = z
  .strictObject({
    run_id: z.string().min(1).max(200),
    container_name: z.string().min(1).optional(),
    environment_config: environmentConfig.optional(),
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

export type StartRequest = z.output<typeof startSchema>;
export type EnvironmentConfig = z.output<typeof environmentConfig>;
export type ExecuteRequest = z.output<typeof executeSchema>;

/** The nested form of a start request, whichever form it came in. */
export function environmentOf(request: StartRequest): EnvironmentConfig {
  if (request.environment_config) return request.environment_config;
  return {
    container_type: request.container_type ?? "docker",
    ...(request.container_image !== undefined ? { image: request.container_image } : {}),
    ...(request.timeout !== undefined ? { timeout: request.timeout } : {}),
    ...(request.resources !== undefined ? { resources: request.resources } : {}),
  };
}
