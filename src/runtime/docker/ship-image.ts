import type Docker from "dockerode";
import { InfrastructureError, NotFoundError } from "../../errors.js";
import { logger } from "../../logger.js";
import type { Deadline } from "../../util/deadline.js";
import { connectionFromEnv, dockerClient } from "./docker-connection.js";

/** Shipments in flight or done, by host and image id: an image travels once per host. */
const shipments = new Map<string, Promise<void>>();

/**
 * Makes `ref` present on a remote engine: when the remote lacks it (or has another image
 * under that name), the local engine's image is streamed over the same SSH connection
 * (`docker save` here, `docker load` there). Concurrent replicas share one shipment.
 */
export async function shipImage(
  ref: string,
  remote: Docker,
  hostLabel: string,
  deadline: Deadline,
  options: { keepRemote?: boolean; onProgress?: ((line: string) => void) | undefined } = {},
): Promise<void> {
  const local = dockerClient(connectionFromEnv());
  const localId = await local
    .getImage(ref)
    .inspect()
    .then((i) => i.Id)
    .catch(() => undefined);
  const remoteId = await remote
    .getImage(ref)
    .inspect()
    .then((i) => i.Id)
    .catch(() => undefined);
  if (remoteId !== undefined && (options.keepRemote || localId === undefined || remoteId === localId)) return;
  if (localId === undefined) {
    throw new NotFoundError(
      "image",
      ref,
      `Image not found: ${ref}, neither on ${hostLabel} nor on this machine to ship there.`,
    );
  }
  const key = `${hostLabel} ${localId}`;
  let shipment = shipments.get(key);
  if (!shipment) {
    shipment = transfer(ref, local, remote, hostLabel, deadline, options.onProgress);
    shipments.set(key, shipment);
    shipment.catch(() => shipments.delete(key)); // a failed shipment may be tried again
  }
  await shipment;
}

async function transfer(
  ref: string,
  local: Docker,
  remote: Docker,
  hostLabel: string,
  deadline: Deadline,
  onProgress: ((line: string) => void) | undefined,
): Promise<void> {
  const started = Date.now();
  let bytes = 0;
  let reported = 0;
  const report = (line: string) => {
    onProgress?.(line);
    logger.info({ image: ref, host: hostLabel }, line);
  };
  report(`shipping ${ref} to ${hostLabel}`);
  try {
    await deadline.run(async () => {
      const saved = (await local.getImage(ref).get()) as NodeJS.ReadableStream;
      saved.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes - reported >= 32 * 2 ** 20) {
          reported = bytes;
          report(`  ${(bytes / 2 ** 20).toFixed(0)} MiB sent to ${hostLabel}`);
        }
      });
      const loading = await remote.loadImage(saved, { quiet: true });
      await new Promise<void>((resolve, reject) =>
        remote.modem.followProgress(loading, (err: Error | null, events: Array<{ error?: string }>) => {
          const failed = err ?? events.find((e) => e.error);
          if (failed) reject(failed instanceof Error ? failed : new Error(failed.error));
          else resolve();
        }),
      );
    });
  } catch (err) {
    if (deadline.fired) throw err;
    throw new InfrastructureError(`shipping ${ref} to ${hostLabel} failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
  report(
    `shipped ${ref} to ${hostLabel}: ${(bytes / 2 ** 20).toFixed(0)} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}
