import { mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { DiskFiles } from "../../src/control/disk-files.js";

async function text(stream: Readable): Promise<string> {
  let out = "";
  for await (const chunk of stream) out += String(chunk);
  return out;
}

describe("disk files (local backend)", () => {
  const files = new DiskFiles(mkdtempSync(join(tmpdir(), "affinetes-disks-")));

  it("writes, lists and reads inside the disk, creating folders", async () => {
    const disk = await files.create("disk_a");
    expect(await files.write(disk, "/a/b/c.txt", Readable.from(["hello"]))).toBe(5);
    expect((await files.list(disk, "/")).map((e) => [e.name, e.type])).toEqual([["a", "directory"]]);
    expect((await files.list(disk, "a/b")).map((e) => [e.name, e.size])).toEqual([["c.txt", 5]]);
    expect(await text((await files.read(disk, "a/b/c.txt")).stream)).toBe("hello");
  });

  it("refuses paths that leave the disk, also through a symlink", async () => {
    const disk = await files.create("disk_b");
    const outside = mkdtempSync(join(tmpdir(), "affinetes-outside-"));
    writeFileSync(join(outside, "secret"), "s");
    symlinkSync(outside, join(disk, "link"));
    symlinkSync(join(outside, "secret"), join(disk, "file-link"));
    for (const path of ["../disk_a/a/b/c.txt", "/../../etc/passwd", "link/secret", "file-link"]) {
      await expect(files.read(disk, path), path).rejects.toMatchObject({ code: "VALIDATION" });
    }
    await expect(files.write(disk, "link/new", Readable.from(["x"]))).rejects.toMatchObject({
      code: "VALIDATION",
    });
    await expect(files.list(disk, "link")).rejects.toMatchObject({ code: "VALIDATION" });
  });

  it("answers NotFound for what does not exist, and keeps no partial file when a write fails", async () => {
    const disk = await files.create("disk_c");
    await expect(files.read(disk, "missing.txt")).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(files.list(disk, "missing")).rejects.toMatchObject({ code: "NOT_FOUND" });
    const failing = new Readable({
      read() {
        this.destroy(new Error("client went away"));
      },
    });
    await expect(files.write(disk, "half.txt", failing)).rejects.toThrow(/went away/);
    expect(await files.list(disk, "/")).toEqual([]);
  });
});
