import { once } from "node:events";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { AffinetesError, PayloadTooLargeError, ValidationError } from "../errors.js";
import { hashPackedContext } from "../image/image-context.js";

/** An uploaded build context on the server's disk; disposing removes it. */
export interface ReceivedContext extends AsyncDisposable {
  file: string;
}

/**
 * Writes an uploaded build context (a tar) to a private temporary file, capped at
 * `maxBytes` and hashed as it arrives: past the cap it is a PayloadTooLargeError, a
 * content hash other than `hash` (or no tar at all) a ValidationError, and either way
 * nothing of it is left.
 */
export async function receiveContext(
  context: AsyncIterable<Uint8Array>,
  hash: string,
  options: { maxBytes: number },
): Promise<ReceivedContext> {
  const dir = await mkdtemp(join(tmpdir(), "affinetes-context-"));
  const remove = () => rm(dir, { recursive: true, force: true });
  const file = join(dir, "context.tar");
  try {
    const tee = new PassThrough();
    tee.on("error", () => undefined); // the hashing's failure is reported through `hashing`
    let hashFailure: unknown;
    const hashing = hashPackedContext(tee).catch((err: unknown) => {
      hashFailure = err;
      return undefined;
    });
    const out = await open(file, "wx", 0o600);
    let size = 0;
    try {
      for await (const chunk of context) {
        size += chunk.byteLength;
        if (size > options.maxBytes) throw new PayloadTooLargeError("the build context", options.maxBytes);
        if (hashFailure !== undefined) break; // not a tar: no need to read the rest
        if (!tee.write(chunk)) await Promise.race([once(tee, "drain").catch(() => undefined), hashing]);
        await out.write(chunk);
      }
    } catch (err) {
      tee.destroy();
      throw err;
    } finally {
      await out.close();
    }
    tee.end();
    const actual = await hashing;
    if (actual === undefined) {
      if (hashFailure instanceof AffinetesError) throw hashFailure;
      throw new ValidationError("context", `not a tar build context: ${(hashFailure as Error).message}`);
    }
    if (actual !== hash)
      throw new ValidationError(
        "hash",
        `the context's content hash is ${actual}, not the ${hash} it was sent as`,
      );
    return { file, [Symbol.asyncDispose]: remove };
  } catch (err) {
    await remove();
    throw err;
  }
}
