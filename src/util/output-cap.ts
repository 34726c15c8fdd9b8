/** Default cap of one stream of a command's output. */
export const DEFAULT_MAX_OUTPUT_BYTES = 10 * 1024 * 1024;

/**
 * Collects a stream's bytes up to a cap, keeping its head and its tail (where errors
 * usually are) and counting what was dropped in between. Memory stays bounded however
 * much the command writes.
 */
export class OutputCap {
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer = Buffer.alloc(0);
  private dropped = 0;

  constructor(private readonly maxBytes: number = DEFAULT_MAX_OUTPUT_BYTES) {}

  push(chunk: Buffer): void {
    const headRoom = Math.ceil(this.maxBytes / 2) - this.headBytes;
    if (headRoom > 0) {
      const part = chunk.subarray(0, headRoom);
      this.head.push(part);
      this.headBytes += part.length;
      chunk = chunk.subarray(part.length);
    }
    if (chunk.length === 0) return;
    const tailMax = Math.floor(this.maxBytes / 2);
    const joined = Buffer.concat([this.tail, chunk]);
    const excess = Math.max(0, joined.length - tailMax);
    this.dropped += excess;
    this.tail = joined.subarray(excess);
  }

  get truncated(): boolean {
    return this.dropped > 0;
  }

  text(): string {
    const marker = this.dropped
      ? Buffer.from(`\n... [${this.dropped} bytes truncated] ...\n`)
      : Buffer.alloc(0);
    return Buffer.concat([...this.head, marker, this.tail]).toString("utf8");
  }
}
