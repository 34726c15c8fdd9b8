import { isolationMissing } from "../runtime/process/isolation.js";
import { ProcessRuntime } from "../runtime/process/process-runtime.js";
import type { Runtime } from "../runtime/runtime.js";
import { SlurmRuntime } from "../runtime/slurm/slurm-runtime.js";
import type { RuntimeTable } from "../rollout/rollout-service.js";

const CONFINED = ["bubblewrap", "apptainer", "singularity", "enroot"] as const;

/**
 * The runtime table of `afs serve`: what answers on this machine serves its container
 * type; what does not is listed with the reason, which clients then hear.
 *
 * - runner `local`: `local` is a shell in its own folder, `docker` a container through
 *   the Docker API (`docker`: the engine when it answers), the confined types a shell
 *   whose commands run under their tool;
 * - runner `slurm`: every instance is a Slurm job holding the same things on its node
 *   (Slurm must answer: else the server does not start).
 */
export async function serviceRuntimes(
  runner: "local" | "slurm",
  options: { sbatchArgs?: readonly string[]; docker: Runtime | undefined },
): Promise<RuntimeTable> {
  if (runner === "slurm") return slurmRuntimes(options.sbatchArgs ?? []);
  const table: Record<string, Runtime | string> = {
    local: new ProcessRuntime(),
    docker: options.docker ?? "no Docker engine answers on this server",
  };
  for (const kind of CONFINED)
    table[kind] = isolationMissing(kind) ?? new ProcessRuntime({ isolation: kind });
  return table;
}

async function slurmRuntimes(sbatchArgs: readonly string[]): Promise<RuntimeTable> {
  const shell = new SlurmRuntime({ sbatchArgs });
  await shell.ping(); // a Slurm runner without Slurm is a configuration error: say so now
  const table: Record<string, Runtime | string> = {
    local: shell,
    docker: new SlurmRuntime({ container: "docker", sbatchArgs }),
  };
  // The tools must be on the nodes; the login node having them is the check we can make here.
  for (const kind of CONFINED) {
    table[kind] = isolationMissing(kind) ?? new SlurmRuntime({ container: kind, sbatchArgs });
  }
  return table;
}
