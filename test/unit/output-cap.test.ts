import { describe, expect, it } from "vitest";
import { OutputCap } from "../../src/util/output-cap.js";

describe("OutputCap", () => {
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
});
