import { readFile, stat, writeFile } from "node:fs/promises";
import type { SFTPWrapper, Stats } from "ssh2";

/** A file's metadata on a host. */
export interface RemoteStat {
  size: number;
  /** Modification time, seconds since the epoch. */
  mtime: number;
  isDirectory: boolean;
}

/** Reading and writing files on one kind of host: SFTP over SSH, the file system here. */
export interface HostFiles {
  /** The content; undefined when the file does not exist. */
  readFile(path: string): Promise<Buffer | undefined>;
  /** Writes a file (its folder must exist). */
  writeFile(path: string, data: string | Buffer, mode: number): Promise<void>;
  /** A path's metadata; undefined when it does not exist. */
  stat(path: string): Promise<RemoteStat | undefined>;
}

/** The files of a host reached over SSH, through one SFTP session. */
export function sftpFiles(sftp: SFTPWrapper): HostFiles {
  return {
    readFile: (path) =>
      new Promise((resolve, reject) =>
        sftp.readFile(path, (err, data) => (err ? missing(err, resolve, reject) : resolve(data))),
      ),
    writeFile: (path, data, mode) =>
      new Promise((resolve, reject) =>
        sftp.writeFile(path, data, { mode }, (err) => (err ? reject(err) : resolve())),
      ),
    stat: (path) =>
      new Promise((resolve, reject) =>
        sftp.stat(path, (err, stats: Stats) =>
          err
            ? missing(err, resolve, reject)
            : resolve({ size: stats.size, mtime: stats.mtime, isDirectory: stats.isDirectory() }),
        ),
      ),
  };
}

/** The files of this machine. */
export const localFiles: HostFiles = {
  readFile: (path) => readFile(path).catch((err: Error) => orMissing(err)),
  writeFile: (path, data, mode) => writeFile(path, data, { mode }),
  stat: async (path) => {
    const info = await stat(path).catch((err: Error) => orMissing(err));
    return (
      info && { size: info.size, mtime: Math.floor(info.mtimeMs / 1000), isDirectory: info.isDirectory() }
    );
  },
};

function isNoSuchFile(err: Error): boolean {
  return (err as { code?: number | string }).code === 2 || (err as { code?: string }).code === "ENOENT";
}

/** A missing file answers undefined; any other failure stays one. */
function missing(err: Error, resolve: (value: undefined) => void, reject: (err: Error) => void): void {
  if (isNoSuchFile(err)) resolve(undefined);
  else reject(err);
}

function orMissing(err: Error): undefined {
  if (isNoSuchFile(err)) return undefined;
  throw err;
}
