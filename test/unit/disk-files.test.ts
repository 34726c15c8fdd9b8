import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
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

  it("lists symlinks as symlinks; deleting one removes the link, never what it points to", async () => {
    const disk = await files.create("disk_d");
    const outside = mkdtempSync(join(tmpdir(), "affinetes-outside-"));
    writeFileSync(join(outside, "keep"), "k");
    symlinkSync(outside, join(disk, "dir-link"));
    symlinkSync(join(outside, "keep"), join(disk, "file-link"));
    expect((await files.list(disk, "/")).map((e) => [e.name, e.type])).toEqual([
      ["dir-link", "symlink"],
      ["file-link", "symlink"],
    ]);
    await expect(files.delete(disk, "dir-link/keep")).rejects.toMatchObject({ code: "VALIDATION" });
    expect(await files.delete(disk, "dir-link")).toBe(true);
    expect(await files.delete(disk, "file-link")).toBe(true);
    expect(readFileSync(join(outside, "keep"), "utf8")).toBe("k");
    expect(await files.list(disk, "/")).toEqual([]);
  });

  it("reads only regular files: a device node or a FIFO made on the disk is never opened", async () => {
    const disk = await files.create("disk_e");
    execFileSync("mknod", [join(disk, "zero"), "c", "1", "5"]); // what root in a container can make
    execFileSync("mkfifo", [join(disk, "fifo")]);
    for (const path of ["zero", "fifo"]) {
      await expect(files.read(disk, path), path).rejects.toMatchObject({ code: "NOT_FOUND" });
    }
    expect((await files.list(disk, "/")).map((e) => [e.name, e.type])).toEqual([
      ["fifo", "other"],
      ["zero", "other"],
    ]);
    expect(await files.delete(disk, "zero")).toBe(true);
  });

  it("refuses '..', NUL and the root where a file is meant", async () => {
    const disk = await files.create("disk_f");
    for (const path of ["a/../../x", "..", "a\0b"]) {
      await expect(files.write(disk, path, Readable.from(["x"])), path).rejects.toMatchObject({
        code: "VALIDATION",
      });
    }
    await expect(files.write(disk, "/", Readable.from(["x"]))).rejects.toMatchObject({ code: "VALIDATION" });
    await expect(files.delete(disk, "/")).rejects.toMatchObject({ code: "VALIDATION" });
    expect(readdirSync(disk)).toEqual([]);
  });

  it("caps a write: past maxBytes a PayloadTooLargeError, and nothing of it is kept", async () => {
    const disk = await files.create("disk_g");
    const chunks = Array.from({ length: 10 }, () => Buffer.alloc(1000, 1));
    await expect(
      files.write(disk, "big/file", Readable.from(chunks), { maxBytes: 5_000 }),
    ).rejects.toMatchObject({
      code: "PAYLOAD_TOO_LARGE",
    });
    expect(readdirSync(join(disk, "big"))).toEqual([]);
    expect(await files.write(disk, "big/file", Readable.from(chunks), { maxBytes: 10_000 })).toBe(10_000);
  });

  it("deletes a tree deeper than the folders it may hold open, and whole disks", async () => {
    const disk = await files.create("disk_h");
    let path = disk;
    for (let i = 0; i < 200; i++) {
      path = join(path, "d");
      mkdirSync(path);
      writeFileSync(join(path, "f"), "x");
    }
    expect(await files.delete(disk, "d")).toBe(true);
    expect(readdirSync(disk)).toEqual([]);
    expect(await files.delete(disk, "d")).toBe(false);
    await files.write(disk, "a/b/c", Readable.from(["x"]));
    await files.remove(disk);
    expect(existsSync(disk)).toBe(false);
  });
});
