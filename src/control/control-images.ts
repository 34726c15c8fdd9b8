import { ValidationError } from "../errors.js";
import { buildPackedImage, tagOf } from "../image/image-builder.js";
import type { RuntimeImages } from "../runtime/runtime-images.js";
import { receiveContext } from "./context-upload.js";

/** Default cap of an uploaded image build context: 512 MiB. */
export const DEFAULT_MAX_CONTEXT_BYTES = 512 * 2 ** 20;

const HASH = /^[0-9a-f]{64}$/;

/** The control plane's images: built from clients' packed contexts, on the runtime's host. */
export class ControlImages {
  constructor(
    /** Undefined: no runtime that runs images answers; every call says so. */
    private readonly images: () => RuntimeImages,
    /** Cap of an uploaded build context; default 512 MiB. */
    readonly maxContextBytes: number = DEFAULT_MAX_CONTEXT_BYTES,
  ) {}

  /** The tag of the image of content hash `hash` when the host has it. */
  async get(hash: string): Promise<{ hash: string; tag: string } | undefined> {
    checkHash(hash);
    const tag = tagOf(hash);
    return (await this.images().has(tag)) ? { hash, tag } : undefined;
  }

  /**
   * Builds a client's packed image context (`Image.buildContext()`) unless the host has
   * it: the hash is checked against the content, so a tag always means its content.
   */
  async build(hash: string, context: AsyncIterable<Uint8Array>): Promise<{ hash: string; tag: string }> {
    checkHash(hash);
    const images = this.images();
    // capped and hashed as it arrives: a context too large or not of its hash is never built
    await using received = await receiveContext(context, hash, { maxBytes: this.maxContextBytes });
    return { hash, tag: await buildPackedImage(images, hash, received.file) };
  }
}

function checkHash(hash: string): void {
  if (!HASH.test(hash)) throw new ValidationError("hash", "a sha256 in hex (64 characters)");
}
