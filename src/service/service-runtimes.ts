import { DockerRuntime } from "../runtime/docker/docker-runtime.js";
import { isolationMissing } from "../runtime/process/isolation.js";
import { ProcessRuntime } from "../runtime/process/process-runtime.js";
import type { Runtime } from "../runtime/runtime.js";
import type { RuntimeTable } from "./rollout-service.js";

/** The runtimes of a service, by container type, and how to release them. */
export interface ServiceRuntimes {
  table: RuntimeTable;
  close(): Promise<void>;
}

/**
 * The runtime table of `afs serve --runner local`: what answers on this machine serves
 * its container type; what does not is listed with the reason, which clients then hear.
 */
export async function serviceRuntimes(): Promise<ServiceRuntimes> {
  const docker = new DockerRuntime();
  const dockerAnswers = await docker.ping(2_000).then(
    () => true,
    () => false,
  );
  const table: Record<string, Runtime | string> = {
    local: new ProcessRuntime(),
    docker: dockerAnswers ? docker : "no Docker engine answers on this server",
  };
  for (const kind of ["bubblewrap", "apptainer", "singularity", "enroot"] as const) {
    table[kind] = isolationMissing(kind) ?? new ProcessRuntime({ isolation: kind });
  }
  return {
    table,
    close: async () => {
      await docker.close();
    },
  };
}
