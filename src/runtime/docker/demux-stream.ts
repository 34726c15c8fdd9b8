interface Frame {
  stream: "stdout" | "stderr";
  data: Buffer;
}

/**
 * Splits Docker's multiplexed stream format (8-byte headers: stream id, 3 zero bytes,
 * 32-bit size) into frames. Output of a TTY container is not multiplexed and comes
 * back as one stdout frame.
 */
function frames(buffer: Buffer): Frame[] {
  if (!looksMultiplexed(buffer)) return buffer.length ? [{ stream: "stdout", data: buffer }] : [];
  const result: Frame[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const size = buffer.readUInt32BE(offset + 4);
    const data = buffer.subarray(offset + 8, offset + 8 + size);
    result.push({ stream: buffer[offset] === 2 ? "stderr" : "stdout", data });
    offset += 8 + size;
  }
  return result;
}

function looksMultiplexed(buffer: Buffer): boolean {
  const first = buffer[0];
  return (
    buffer.length >= 8 &&
    first !== undefined &&
    first <= 2 &&
    buffer[1] === 0 &&
    buffer[2] === 0 &&
    buffer[3] === 0
  );
}

/** Logs as one text, stdout and stderr interleaved in the order they came. */
export function demuxDockerLogs(buffer: Buffer): string {
  return Buffer.concat(frames(buffer).map((f) => f.data)).toString("utf8");
}

/** Reads multiplexed frames from a stream's chunks, which may split a frame anywhere. */
export class DockerFrameReader {
  private pending = Buffer.alloc(0);

  /** Appends a chunk; returns the frames it completed (TTY output comes as stdout). */
  frames(chunk: Buffer): Frame[] {
    this.pending = Buffer.concat([this.pending, chunk]);
    if (this.pending.length >= 8 && !looksMultiplexed(this.pending)) {
      const data = this.pending; // a TTY container: raw output
      this.pending = Buffer.alloc(0);
      return [{ stream: "stdout", data }];
    }
    const out: Frame[] = [];
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) break;
      out.push({
        stream: this.pending[0] === 2 ? "stderr" : "stdout",
        data: this.pending.subarray(8, 8 + size),
      });
      this.pending = this.pending.subarray(8 + size);
    }
    return out;
  }

  /** Appends a chunk; returns the text of the frames it completed, both streams interleaved. */
  push(chunk: Buffer): string {
    return Buffer.concat(this.frames(chunk).map((f) => f.data)).toString("utf8");
  }
}
