/** Default cap of one stream of a command's output. */
export const DEFAULT_MAX_OUTPUT_BYTES = 10 * 1024 * 1024;

/**
 * Collects a stream's bytes up to a cap, keeping its head and its tail (where errors
 * usually are) and counting what was dropped in between. Memory stays bounded however
 * much the command writes, and each chunk costs work in its own size only: the tail is
 * a ring, so output far past the cap is not copied again and again.
 */
export class OutputCap {
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private readonly tail: TailRing;
  private dropped = 0;

  constructor(private readonly maxBytes: number = DEFAULT_MAX_OUTPUT_BYTES) {
    this.tail = new TailRing(Math.floor(maxBytes / 2));
  }

  push(chunk: Buffer): void {
    const headRoom = Math.ceil(this.maxBytes / 2) - this.headBytes;
    if (headRoom > 0) {
      const part = chunk.subarray(0, headRoom);
      this.head.push(part);
      this.headBytes += part.length;
      chunk = chunk.subarray(part.length);
    }
    if (chunk.length > 0) this.dropped += this.tail.push(chunk);
  }

  get truncated(): boolean {
    return this.dropped > 0;
  }

  text(): string {
    const marker = this.dropped
      ? Buffer.from(`\n... [${this.dropped} bytes truncated] ...\n`)
      : Buffer.alloc(0);
    return Buffer.concat([...this.head, marker, ...this.tail.parts()]).toString("utf8");
  }
}

/**
 * The last `max` bytes of a stream, in one buffer used as a ring. It grows (doubling) up
 * to `max` while the stream is short, so small outputs stay small.
 */
class TailRing {
  private ring: Buffer = Buffer.alloc(0);
  /** Where the oldest kept byte is. */
  private start = 0;
  private length = 0;

  constructor(private readonly max: number) {}

  /** Appends `chunk`, dropping the oldest bytes past `max`; returns how many were dropped. */
  push(chunk: Buffer): number {
    let dropped = 0;
    if (chunk.length >= this.max) {
      // the chunk alone fills the tail: all that was kept and its own front go
      dropped = this.length + chunk.length - this.max;
      chunk = chunk.subarray(chunk.length - this.max);
      this.start = 0;
      this.length = 0;
    }
    this.reserve(this.length + chunk.length);
    const overflow = this.length + chunk.length - this.ring.length;
    if (overflow > 0) {
      this.start = (this.start + overflow) % this.ring.length;
      this.length -= overflow;
      dropped += overflow;
    }
    const end = (this.start + this.length) % Math.max(1, this.ring.length);
    const first = Math.min(chunk.length, this.ring.length - end);
    chunk.copy(this.ring, end, 0, first);
    chunk.copy(this.ring, 0, first);
    this.length += chunk.length;
    return dropped;
  }

  /** The kept bytes, oldest first (views of the ring, valid until the next push). */
  parts(): Buffer[] {
    const end = this.start + this.length;
    if (end <= this.ring.length) return [this.ring.subarray(this.start, end)];
    return [this.ring.subarray(this.start), this.ring.subarray(0, end - this.ring.length)];
  }

  /** Grows the ring (never past `max`) so `bytes` fit, unwrapping what it holds. */
  private reserve(bytes: number): void {
    if (bytes <= this.ring.length || this.ring.length >= this.max) return;
    const grown = Buffer.allocUnsafe(Math.min(this.max, Math.max(bytes, this.ring.length * 2)));
    let at = 0;
    for (const part of this.parts()) at += part.copy(grown, at);
    this.ring = grown;
    this.start = 0;
  }
}
