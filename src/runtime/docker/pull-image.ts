import type Docker from "dockerode";
import { logger } from "../../logger.js";
import type { Deadline } from "../../util/deadline.js";

/**
 * Pulls an image, waiting for the whole stream. A failed pull is not fatal: the local
 * image, when there is one, is used instead (air-gapped hosts, registries that are down).
 */
export async function pullImage(docker: Docker, ref: string, deadline: Deadline): Promise<void> {
  try {
    await deadline.run(async (signal) => {
      const stream = await docker.pull(ref, signal ? { abortSignal: signal } : {});
      await new Promise<void>((resolve, reject) => {
        docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve()));
      });
    });
  } catch (err) {
    if (deadline.fired) throw err;
    logger.warn({ image: ref, err: (err as Error).message }, "pull failed; using the local image if present");
  }
}
