import { createReadStream, createWriteStream } from "node:fs";
import { lstat, mkdir, readdir, realpath, rename, rm } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { NotFoundError, ValidationError } from "../errors.js";

/** An entry of a disk's folder. */
export interface DiskEntry {
  name: string;
  type: "file" | "directory" | "symlink" | "other";
  size: number;
  modifiedAt: string;
}

/**
 * The files of `local` disks: one folder per disk on the server host. Every path a
 * client gives is resolved inside its disk's folder, symlinks included: nothing outside
 * can be read or written through it.
 */
export class DiskFiles {
  constructor(private readonly root: string) {}

  /** Creates the folder of a new disk; returns its location. */
  async create(id: string): Promise<string> {
    const location = join(this.root, id);
    await mkdir(location, { recursive: true, mode: 0o777 });
    return location;
  }

  async remove(location: string): Promise<void> {
    await rm(location, { recursive: true, force: true });
  }

  async list(location: string, path: string): Promise<DiskEntry[]> {
    const folder = await this.inside(location, path);
    const stat = await lstat(folder).catch(() => undefined);
    if (!stat?.isDirectory())
      throw new NotFoundError("directory", path, `No such directory on the disk: ${path}`);
    const names = await readdir(folder);
    const entries = await Promise.all(
      names.sort().map(async (name) => {
        const s = await lstat(join(folder, name));
        const type = s.isFile()
          ? "file"
          : s.isDirectory()
            ? "directory"
            : s.isSymbolicLink()
              ? "symlink"
              : "other";
        return { name, type, size: s.size, modifiedAt: s.mtime.toISOString() } as DiskEntry;
      }),
    );
    return entries;
  }

  /** A file's content as a stream, and its size. */
  async read(location: string, path: string): Promise<{ stream: Readable; size: number }> {
    const file = await this.inside(location, path);
    const stat = await lstat(file).catch(() => undefined);
    if (!stat?.isFile()) throw new NotFoundError("file", path, `No such file on the disk: ${path}`);
    return { stream: createReadStream(file), size: stat.size };
  }

  /** Writes a file from a stream (creating its folders); readers never see half a file. */
  async write(location: string, path: string, content: Readable): Promise<number> {
    const file = await this.inside(location, path);
    if (file === (await realpath(location)))
      throw new ValidationError("path", "give a file path, not the disk's root");
    await mkdir(dirname(file), { recursive: true });
    const partial = `${file}.partial-${process.pid}-${Date.now()}`;
    try {
      await pipeline(content, createWriteStream(partial));
      await rename(partial, file);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    return (await lstat(file)).size;
  }

  /** Removes a file or a folder with its content; false when there was none. */
  async delete(location: string, path: string): Promise<boolean> {
    const target = await this.inside(location, path);
    if (target === (await realpath(location)))
      throw new ValidationError("path", "the disk's root cannot be deleted");
    const existed = await lstat(target).then(
      () => true,
      () => false,
    );
    await rm(target, { recursive: true, force: true });
    return existed;
  }

  /**
   * The absolute path of `path` inside the disk; a path leaving it (`..`, or through a
   * symlink pointing out) is a ValidationError.
   */
  private async inside(location: string, path: string): Promise<string> {
    if (path.includes("\0")) throw new ValidationError("path", "must not contain NUL");
    const root = await realpath(location);
    const target = resolve(root, `.${sep}${path}`);
    // resolve what exists of the path: a symlinked folder on the way must stay inside too
    let existing = target;
    for (;;) {
      const real = await realpath(existing).catch(() => undefined);
      if (real !== undefined) {
        if (!isWithin(root, real)) throw new ValidationError("path", `${path} leaves the disk`);
        break;
      }
      if (existing === root) break;
      existing = dirname(existing);
    }
    if (!isWithin(root, target)) throw new ValidationError("path", `${path} leaves the disk`);
    return target;
  }
}

function isWithin(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith("..") && !rel.startsWith(sep));
}
