import { afterEach, describe, expect, it, vi } from "vitest";
import { DEFAULT_MAX_OUTPUT_BYTES, OutputCap } from "../../src/util/output-cap.js";

describe("OutputCap", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("keeps everything under the cap", () => {
    const cap = new OutputCap(100);
    cap.push(Buffer.from("hello "));
    cap.push(Buffer.from("world"));
    expect(cap.text()).toBe("hello world");
    expect(cap.truncated).toBe(false);
  });

  it("keeps head and tail past the cap, counting what was dropped, however it is chunked", () => {
    const cap = new OutputCap(10);
    for (const c of "abcdefghijklmnopqrstuvwxyz") cap.push(Buffer.from(c));
    expect(cap.truncated).toBe(true);
    expect(cap.text()).toBe("abcde\n... [16 bytes truncated] ...\nvwxyz");
    const once = new OutputCap(10);
    once.push(Buffer.from("abcdefghijklmnopqrstuvwxyz"));
    expect(once.text()).toBe(cap.text());
  });

  it("gives the same head, tail and count for any chunking (ring wrapping, chunks past the tail's size)", () => {
    const text = Array.from({ length: 500 }, (_, i) => String.fromCharCode(97 + ((i * 7) % 26))).join("");
    for (const max of [0, 1, 2, 7, 10, 64, 499, 500, 1000]) {
      const whole = new OutputCap(max);
      whole.push(Buffer.from(text));
      const head = text.slice(0, Math.ceil(max / 2));
      const tail = text.slice(text.length - Math.floor(max / 2));
      const dropped = text.length - head.length - tail.length;
      const expected = dropped > 0 ? `${head}\n... [${dropped} bytes truncated] ...\n${tail}` : text;
      expect(whole.text()).toBe(expected);
      for (const size of [1, 3, 13, 64, 333]) {
        const chunked = new OutputCap(max);
        for (let at = 0; at < text.length; at += size) chunked.push(Buffer.from(text.slice(at, at + size)));
        expect(chunked.text(), `cap ${max}, chunks of ${size}`).toBe(expected);
        expect(chunked.truncated).toBe(dropped > 0);
      }
    }
  });

  it("costs work linear in the output: 300 MB in 64 KiB chunks copies each byte about once", () => {
    const total = 300 * 1024 * 1024;
    // The tail's ring may copy what it holds once more as it grows, and text() joins once.
    // Copying the tail again per chunk (as before) moved about 24 GB here.
    const bound = total + 3 * DEFAULT_MAX_OUTPUT_BYTES;
    // Counted, not timed: every byte a Buffer copy or concat moves while capping (past the
    // bound the count stops the test at once, rather than after the quadratic work).
    let copied = 0;
    const count = (n: number) => {
      copied += n;
      if (copied > bound) throw new Error(`copied ${copied} bytes for ${total} pushed`);
    };
    const copy = Buffer.prototype.copy;
    vi.spyOn(Buffer.prototype, "copy").mockImplementation(function (this: Buffer, ...args) {
      const n = copy.apply(this, args);
      count(n);
      return n;
    });
    const concat = Buffer.concat;
    vi.spyOn(Buffer, "concat").mockImplementation((list, length) => {
      const joined = concat(list, length);
      count(joined.length);
      return joined;
    });
    const chunk = Buffer.alloc(64 * 1024, "x");
    const cap = new OutputCap();
    for (let pushed = 0; pushed < total; pushed += chunk.length) cap.push(chunk);
    const text = cap.text();
    expect(cap.truncated).toBe(true);
    expect(text).toContain(`[${total - DEFAULT_MAX_OUTPUT_BYTES} bytes truncated]`);
    expect(copied).toBeLessThanOrEqual(bound);
  });
});
