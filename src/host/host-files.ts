import { readFile, stat, writeFile } from "node:fs/promises";
import type { SFTPWrapper } from "ssh2";

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

type Done<T> = (err: Error | null | undefined, value: T) => void;

/** The files of a host reached over SSH, through one SFTP session. */
export function sftpFiles(sftp: SFTPWrapper): HostFiles {
  const call = <T>(start: (done: Done<T>) => void) =>
    new Promise<T>((resolve, reject) => start((err, value) => (err ? reject(err) : resolve(value))));
  return {
    readFile: (path) => call<Buffer>((done) => sftp.readFile(path, done)).catch(orMissing),
    writeFile: (path, data, mode) => call<void>((done) => sftp.writeFile(path, data, { mode }, done)),
    stat: (path) =>
      call<{ size: number; mtime: number; isDirectory(): boolean }>((done) => sftp.stat(path, done)).then(
        (s) => ({ size: s.size, mtime: s.mtime, isDirectory: s.isDirectory() }),
        orMissing,
      ),
  };
}

/** The files of this machine. */
export const localFiles: HostFiles = {
  readFile: (path) => readFile(path).catch(orMissing),
  writeFile: (path, data, mode) => writeFile(path, data, { mode }),
  stat: (path) =>
    stat(path).then(
      (s) => ({ size: s.size, mtime: Math.floor(s.mtimeMs / 1000), isDirectory: s.isDirectory() }),
      orMissing,
    ),
};

/** A missing file is undefined; any other failure stays one. */
function orMissing(err: { code?: number | string }): undefined {
  if (err.code === 2 || err.code === "ENOENT") return undefined;
  throw err;
}
