import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Readable } from "node:stream";
import { ConflictError, NotFoundError, PayloadTooLargeError, ValidationError } from "../errors.js";
import { diskPathParts } from "./disk-path.js";
import { HeldDirectory } from "./held-directory.js";

/** An entry of a disk's folder. */
export interface DiskEntry {
  name: string;
  type: "file" | "directory" | "symlink" | "other";
  size: number;
  modifiedAt: string;
}

/** Default cap of one uploaded file: 1 GiB. */
export const DEFAULT_MAX_FILE_BYTES = 2 ** 30;

/** Deeper than this, a folder being deleted is moved up first: a deletion holds at most this many folders open. */
const MAX_HELD_DEPTH = 64;
/** How often a deletion starts over on a folder whose content keeps changing under it. */
const MAX_DELETE_ROUNDS = 1_000;

/**
 * The files of `local` disks: one folder per disk on the server host, which containers
 * mount and so may change at any moment (swap a folder for a symlink, make a device node).
 * Every operation is race-free: a client's path is walked one name at a time from the
 * disk's folder, each folder held open and the next name looked up inside it, never
 * following a symlink (see `HeldDirectory`). Symlinks on a disk are listed and can be
 * deleted, never followed; only regular files are read.
 */
export class DiskFiles {
  constructor(private readonly root: string) {}

  /** Creates the folder of a new disk; returns its location. */
  async create(id: string): Promise<string> {
    if (!/^[A-Za-z0-9_-]+$/.test(id)) throw new ValidationError("id", "a disk id");
    await mkdir(this.root, { recursive: true });
    const location = join(this.root, id);
    await mkdir(location, { mode: 0o755 });
    return location;
  }

  /** Removes a disk's folder and everything in it, following no link. */
  async remove(location: string): Promise<void> {
    const parent = await HeldDirectory.open(dirname(location)).catch((err: unknown) => {
      if (errno(err) === "ENOENT") return undefined;
      throw err;
    });
    if (!parent) return;
    try {
      await removeTree(parent, basename(location), location);
    } finally {
      await parent.close();
    }
  }

  async list(location: string, path: string): Promise<DiskEntry[]> {
    const folder = await this.walk(location, diskPathParts(path), path, { create: false, target: true });
    try {
      const names = (await folder.list()).sort();
      const entries: DiskEntry[] = [];
      for (const name of names) {
        const s = await folder.lstat(name).catch(() => undefined); // gone meanwhile: not listed
        if (!s) continue;
        const type = s.isFile()
          ? "file"
          : s.isDirectory()
            ? "directory"
            : s.isSymbolicLink()
              ? "symlink"
              : "other";
        entries.push({ name, type, size: s.size, modifiedAt: s.mtime.toISOString() });
      }
      return entries;
    } finally {
      await folder.close();
    }
  }

  /** A regular file's content as a stream (as large as the file was when opened), and its size. */
  async read(location: string, path: string): Promise<{ stream: Readable; size: number }> {
    const parts = diskPathParts(path);
    const name = parts.pop();
    if (name === undefined) throw new NotFoundError("file", path, `No such file on the disk: ${path}`);
    const folder = await this.walk(location, parts, path, { create: false, target: false });
    let opened: Awaited<ReturnType<HeldDirectory["openFile"]>>;
    try {
      opened = await folder.openFile(name).catch((err: unknown) => {
        throw pathError(err, path);
      });
      if (!opened) throw await notAFile(folder, name, path);
    } finally {
      await folder.close();
    }
    const { handle, stat } = opened;
    if (stat.size === 0) {
      await handle.close();
      return { stream: Readable.from([]), size: 0 };
    }
    // a container may append meanwhile: the answer holds the size it announced
    return { stream: handle.createReadStream({ start: 0, end: stat.size - 1 }), size: stat.size };
  }

  /**
   * Writes a file from a stream (creating its folders); readers never see half a file.
   * More than `maxBytes` is a PayloadTooLargeError, and nothing of it is kept.
   */
  async write(
    location: string,
    path: string,
    content: AsyncIterable<Uint8Array | string>,
    options: { maxBytes?: number } = {},
  ): Promise<number> {
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
    const parts = diskPathParts(path);
    const name = parts.pop();
    if (name === undefined) throw new ValidationError("path", "give a file path, not the disk's root");
    const folder = await this.walk(location, parts, path, { create: true, target: false });
    try {
      const partial = `.afs-partial-${randomBytes(8).toString("hex")}`;
      // the folder may be removed meanwhile (a container deleting it): that is the client's 404, not ours
      const file = await folder.createFile(partial).catch((err: unknown) => {
        throw pathError(err, path);
      });
      let size = 0;
      try {
        try {
          for await (const chunk of content) {
            const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
            size += bytes.byteLength;
            if (size > maxBytes) throw new PayloadTooLargeError("the file", maxBytes);
            await file.write(bytes);
          }
        } finally {
          await file.close();
        }
        await folder.rename(partial, name).catch(async (err: unknown) => {
          if (errno(err) === "EISDIR" || errno(err) === "ENOTEMPTY" || errno(err) === "EEXIST")
            throw new ValidationError("path", `${path} is a folder`);
          throw pathError(err, path);
        });
      } catch (err) {
        await folder.unlink(partial).catch(() => undefined);
        throw err;
      }
      return size;
    } finally {
      await folder.close();
    }
  }

  /** Removes a file, a symlink (not what it points to) or a folder with its content; false when there was none. */
  async delete(location: string, path: string): Promise<boolean> {
    const parts = diskPathParts(path);
    const name = parts.pop();
    if (name === undefined) throw new ValidationError("path", "the disk's root cannot be deleted");
    let folder: HeldDirectory;
    try {
      folder = await this.walk(location, parts, path, { create: false, target: false });
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
    try {
      return await removeTree(folder, name, path);
    } finally {
      await folder.close();
    }
  }

  /**
   * The folder at `parts` inside the disk, held open. `create` makes missing folders;
   * `target`: the folder itself is what the caller asked for (a missing one is NotFound
   * "directory"), rather than the parent of a file.
   */
  private async walk(
    location: string,
    parts: readonly string[],
    shown: string,
    options: { create: boolean; target: boolean },
  ): Promise<HeldDirectory> {
    let folder = await HeldDirectory.open(location).catch((err: unknown) => {
      throw errno(err) === "ENOENT" ? new NotFoundError("disk", location, "the disk's folder is gone") : err;
    });
    try {
      for (const part of parts) {
        const next = await this.step(folder, part, shown, options);
        await folder.close();
        folder = next;
      }
      return folder;
    } catch (err) {
      await folder.close();
      throw err;
    }
  }

  private async step(
    folder: HeldDirectory,
    name: string,
    shown: string,
    options: { create: boolean; target: boolean },
  ): Promise<HeldDirectory> {
    try {
      return await folder.openDirectory(name);
    } catch (err) {
      if (errno(err) === "ENOENT" && options.create) {
        await folder.mkdir(name).catch((e: unknown) => {
          // made meanwhile: opened below, as anything else is
          if (errno(e) !== "EEXIST") throw pathError(e, shown);
        });
        try {
          return await folder.openDirectory(name);
        } catch (again) {
          throw await notAFolder(folder, name, shown, again);
        }
      }
      if (errno(err) === "ENOENT" && options.target)
        throw new NotFoundError("directory", shown, `No such directory on the disk: ${shown}`);
      throw await notAFolder(folder, name, shown, err);
    }
  }
}

/**
 * Removes `name` in `parent` and, when it is a folder, its content, following no link:
 * each folder is opened (O_NOFOLLOW) and emptied through its descriptor. An entry that
 * changes kind meanwhile is looked at again. False when there was nothing.
 */
async function removeTree(parent: HeldDirectory, name: string, shown: string): Promise<boolean> {
  const pending = [name];
  let existed: boolean | undefined;
  let retries = 0;
  while (pending.length) {
    const next = pending.shift() as string;
    const outcome = await removeEntry(parent, next, parent, pending, 0);
    if (outcome === "again") {
      if (++retries > MAX_DELETE_ROUNDS)
        throw new ConflictError("change during the deletion of", `${shown} (its content kept changing)`);
      pending.unshift(next);
    }
    if (next === name) existed ??= outcome !== "absent";
  }
  return existed ?? false;
}

/**
 * One entry's removal. Folders deeper than MAX_HELD_DEPTH are moved into `top` under a
 * fresh name and queued in `pending`, so the open folders stay few however deep the tree.
 */
async function removeEntry(
  folder: HeldDirectory,
  name: string,
  top: HeldDirectory,
  pending: string[],
  depth: number,
): Promise<"removed" | "absent" | "again"> {
  const stat = await folder.lstat(name).catch((err: unknown) => {
    if (errno(err) === "ENOENT") return undefined;
    throw err;
  });
  if (!stat) return "absent";
  if (!stat.isDirectory()) {
    try {
      await folder.unlink(name);
      return "removed";
    } catch (err) {
      if (errno(err) === "ENOENT") return "removed";
      if (errno(err) === "EISDIR" || errno(err) === "EPERM") return "again"; // a folder now
      throw err;
    }
  }
  if (depth >= MAX_HELD_DEPTH) {
    const moved = `.afs-deleting-${randomBytes(8).toString("hex")}`;
    await folder.rename(name, moved, top);
    pending.push(moved);
    return "removed";
  }
  let sub: HeldDirectory;
  try {
    sub = await folder.openDirectory(name);
  } catch (err) {
    if (["ENOENT", "ENOTDIR", "ELOOP"].includes(errno(err) ?? "")) return "again"; // swapped meanwhile
    throw err;
  }
  try {
    for (const child of await sub.list()) {
      const outcome = await removeEntry(sub, child, top, pending, depth + 1);
      if (outcome === "again") return "again";
    }
  } finally {
    await sub.close();
  }
  try {
    await folder.rmdir(name);
    return "removed";
  } catch (err) {
    if (errno(err) === "ENOENT") return "removed";
    if (["ENOTEMPTY", "EEXIST", "ENOTDIR"].includes(errno(err) ?? "")) return "again";
    throw err;
  }
}

/** Why `name` in `folder` could not be opened as a folder, as the client's error. */
async function notAFolder(folder: HeldDirectory, name: string, shown: string, err: unknown): Promise<Error> {
  if (!["ENOTDIR", "ELOOP"].includes(errno(err) ?? "")) return pathError(err, shown);
  const stat = await folder.lstat(name).catch(() => undefined);
  if (stat?.isSymbolicLink())
    return new ValidationError(
      "path",
      `${shown} passes through a symlink (${name}): symlinks on a disk are never followed`,
    );
  return new ValidationError("path", `${shown}: ${name} is not a folder`);
}

/** Why `name` in `folder` is not a readable file. */
async function notAFile(folder: HeldDirectory, name: string, shown: string): Promise<Error> {
  const stat = await folder.lstat(name).catch(() => undefined);
  if (stat?.isSymbolicLink())
    return new ValidationError("path", `${shown} is a symlink: symlinks on a disk are never followed`);
  return new NotFoundError("file", shown, `No such file on the disk: ${shown} (not a regular file)`);
}

/** A file-system error on a client's path as the client's error. */
function pathError(err: unknown, shown: string): Error {
  switch (errno(err)) {
    case "ENOENT":
      return new NotFoundError("file", shown, `No such file on the disk: ${shown}`);
    case "ENAMETOOLONG":
      return new ValidationError("path", `${shown.slice(0, 80)}... is too long`);
    case "ENOTDIR":
    case "ELOOP":
      return new ValidationError("path", `${shown} is not a file inside the disk`);
    default:
      return err instanceof Error ? err : new Error(String(err));
  }
}

function errno(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}
