import { constants } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { lstat, mkdir, open, readdir, rename, rmdir, unlink } from "node:fs/promises";
import type { Stats } from "node:fs";
import { UnsupportedError } from "../errors.js";

/** Linux's O_PATH (not in `fs.constants`): a handle on the entry itself, opening nothing. */
const O_PATH = 0o10000000;
const DIRECTORY = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/**
 * An open directory, and every operation on one of its entries relative to it: the
 * directory is the one that was opened, whatever is renamed or swapped for a symlink
 * meanwhile. Node has no `openat`, so an entry is named through the descriptor,
 * `/proc/self/fd/<fd>/<name>`: the kernel resolves the descriptor to the open directory
 * and looks `name` up in it, and only `name`'s own symlink-ness is left, which every
 * method here refuses to follow (O_NOFOLLOW, lstat, unlink, rename, rmdir, mkdir).
 *
 * `name` is always one path component (no `/`, not `.` or `..`): callers check it.
 */
export class HeldDirectory {
  private constructor(private readonly handle: FileHandle) {}

  /** Opens the directory at an absolute path; the path's last component must not be a symlink. */
  static async open(path: string): Promise<HeldDirectory> {
    if (process.platform !== "linux")
      throw new UnsupportedError("disk files need Linux (/proc/self/fd) to be race-free");
    return new HeldDirectory(await open(path, DIRECTORY));
  }

  /** The path that names `name` inside this very directory. */
  entry(name: string): string {
    return `/proc/self/fd/${this.handle.fd}/${name}`;
  }

  /** The subdirectory `name`; ENOTDIR when it is a symlink or not a directory. */
  async openDirectory(name: string): Promise<HeldDirectory> {
    return new HeldDirectory(await open(this.entry(name), DIRECTORY));
  }

  /**
   * The regular file `name`, open for reading, with its stat; undefined when `name` is
   * anything else (a symlink, a device, a FIFO), which is never opened: a device node a
   * container made on its disk would otherwise be read by the server with the host's rights.
   */
  async openFile(name: string): Promise<{ handle: FileHandle; stat: Stats } | undefined> {
    const path = await open(this.entry(name), O_PATH | constants.O_NOFOLLOW);
    try {
      const stat = await path.stat();
      if (!stat.isFile()) return undefined;
      // reopening the O_PATH descriptor opens the inode it holds, not whatever the name is now
      const handle = await open(`/proc/self/fd/${path.fd}`, constants.O_RDONLY | constants.O_NOCTTY);
      return { handle, stat };
    } finally {
      await path.close();
    }
  }

  /** Creates the file `name` (which must not exist) for writing. */
  async createFile(name: string): Promise<FileHandle> {
    return open(
      this.entry(name),
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o644,
    );
  }

  async mkdir(name: string): Promise<void> {
    await mkdir(this.entry(name), { mode: 0o755 });
  }

  /** The entry's own metadata (a symlink is described, not followed). */
  async lstat(name: string): Promise<Stats> {
    return lstat(this.entry(name));
  }

  async list(): Promise<string[]> {
    return readdir(`/proc/self/fd/${this.handle.fd}`);
  }

  async unlink(name: string): Promise<void> {
    await unlink(this.entry(name));
  }

  async rmdir(name: string): Promise<void> {
    await rmdir(this.entry(name));
  }

  /** Renames `from` here to `to` in `target` (the same directory unless given); replaces a file `to`. */
  async rename(from: string, to: string, target: HeldDirectory = this): Promise<void> {
    await rename(this.entry(from), target.entry(to));
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}
