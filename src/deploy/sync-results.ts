import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { lstat, mkdir, realpath, rename, rm, utimes, writeFile } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { extract as extractEntries } from "tar-stream";
import type { Header } from "tar-stream";
import { InfrastructureError, NotFoundError, ValidationError } from "../errors.js";
import { Deadline } from "../util/deadline.js";
import { shellQuote } from "../util/shell-quote.js";
import type { Host } from "../host/host.js";
import { excludeMatcher, mapLimit } from "./project-files.js";
import { absoluteRemotePath, runRemotePipe, typedFailure } from "./push.js";

/** How `syncResults` fetches. */
export interface SyncOptions {
  /** Gitignore-style patterns of remote files to leave where they are. */
  exclude?: readonly string[];
  /** Called after each file is written locally. */
  onProgress?: (p: { files: number; totalFiles: number; bytes: number; totalBytes: number }) => void;
  /** Upper bound for the whole sync, in milliseconds. */
  timeoutMs?: number;
  /** Cancels the sync; it then rejects with `AbortedError`. */
  signal?: AbortSignal;
}

/** What a sync did. */
export interface SyncReport {
  /** Relative paths written locally (new or changed remotely). */
  received: string[];
  /** Remote files already up to date locally. */
  skipped: number;
  /** Bytes of file content received. */
  bytes: number;
}

/** A remote file as `find` lists it; `mtime` in whole seconds. */
interface RemoteFile {
  path: string;
  size: number;
  mtime: number;
}

/** Exit code the listing script gives for a missing folder (find's own codes are 0 and 1). */
const MISSING_FOLDER = 44;

/**
 * Copies the remote folder's files into `localPath`, skipping those whose local copy has
 * the same size and modification time (whole seconds). Changed files travel in one tar
 * stream; each gets the remote modification time, so the next sync skips it.
 * Throws `NotFoundError` when the remote folder does not exist.
 */
export async function syncResults(
  host: Host,
  remotePath: string,
  localPath: string,
  options: SyncOptions = {},
): Promise<SyncReport> {
  checkSyncArgs(remotePath, localPath, options);
  const deadline = new Deadline(`sync of ${remotePath}`, options);
  try {
    const dir = await absoluteRemotePath(host, remotePath);
    const excluded = excludeMatcher(options.exclude ?? []);
    const remote = (await listRemote(host, dir, remotePath, deadline)).filter((f) => !excluded(f.path));
    const local = resolve(localPath);
    await mkdir(local, { recursive: true });
    const stale = await mapLimit(remote, 32, async (file) => ((await isCurrent(local, file)) ? [] : [file]));
    const changed = stale.flat();
    const { received, bytes } =
      changed.length > 0
        ? await fetchFiles(host, dir, local, changed, options, deadline)
        : { received: [], bytes: 0 };
    return { received, skipped: remote.length - changed.length, bytes };
  } catch (err) {
    throw deadline.fired ? deadline.error(err) : typedFailure(err, `sync of ${remotePath}`);
  }
}

function checkSyncArgs(remotePath: string, localPath: string, options: SyncOptions): void {
  if (typeof remotePath !== "string" || remotePath.trim() === "" || remotePath.includes("\0")) {
    throw new ValidationError("remotePath", "give the remote folder to fetch");
  }
  if (typeof localPath !== "string" || localPath === "") {
    throw new ValidationError("localPath", "give the local folder to write into");
  }
  if (options.exclude !== undefined && !options.exclude.every((p) => typeof p === "string")) {
    throw new ValidationError("exclude", "give a list of patterns");
  }
}

/**
 * The remote folder's regular files, with one `find` (GNU: `-printf`), streamed so a
 * large listing has no output cap.
 */
async function listRemote(host: Host, dir: string, shown: string, deadline: Deadline): Promise<RemoteFile[]> {
  const script =
    `[ -d ${shellQuote(dir)} ] || exit ${MISSING_FOLDER}; ` +
    `cd -- ${shellQuote(dir)} && find . -type f -printf '%P\\0%s\\0%T@\\0'`;
  const chunks: Buffer[] = [];
  const code = await runRemotePipe(host, `sh -c ${shellQuote(script)}`, deadline, {
    consume: async (stdout) => {
      for await (const chunk of stdout) chunks.push(chunk as Buffer);
    },
    okCodes: [0, MISSING_FOLDER],
  });
  if (code === MISSING_FOLDER) throw new NotFoundError("remote folder", shown);
  return parseListing(Buffer.concat(chunks));
}

/** `find`'s NUL-separated (path, size, mtime) triples. */
function parseListing(listing: Buffer): RemoteFile[] {
  const fields = listing.toString("utf8").split("\0");
  const files: RemoteFile[] = [];
  for (let i = 0; i + 2 < fields.length; i += 3) {
    const [path = "", size = "0", mtime = "0"] = fields.slice(i, i + 3);
    // %T@ has a fraction ("1712345678.1234567890"): the whole part, not a float that might round up.
    files.push({ path, size: Number(size), mtime: Number(mtime.split(".")[0]) });
  }
  return files;
}

async function isCurrent(local: string, file: RemoteFile): Promise<boolean> {
  const info = await lstat(join(local, file.path)).catch(() => undefined);
  return !!info?.isFile() && info.size === file.size && Math.floor(info.mtimeMs / 1000) === file.mtime;
}

/** Fetches `files` in one tar stream (their list on its stdin) and writes them under `local`. */
async function fetchFiles(
  host: Host,
  dir: string,
  local: string,
  files: readonly RemoteFile[],
  options: SyncOptions,
  deadline: Deadline,
): Promise<{ received: string[]; bytes: number }> {
  // "./" keeps a name starting with "-" from reading as an option; --hard-dereference
  // sends hard-linked files as files; --ignore-failed-read lets a file deleted since the
  // listing just not travel. Exit code 1 is tar's "a file changed as we read it".
  const script =
    `tar -c -f - -C ${shellQuote(dir)} --hard-dereference --ignore-failed-read ` +
    "--no-recursion --null -T -";
  const list = Buffer.from(files.map((f) => `./${f.path}\0`).join(""));
  const wanted = new Set(files.map((f) => f.path));
  const totalBytes = files.reduce((sum, f) => sum + f.size, 0);
  const received: string[] = [];
  let bytes = 0;
  const written = (path: string, size: number) => {
    received.push(path);
    bytes += size;
    options.onProgress?.({ files: received.length, totalFiles: files.length, bytes, totalBytes });
  };
  await runRemotePipe(host, `sh -c ${shellQuote(script)}`, deadline, {
    feed: (stdin) => pipeline(Readable.from([list]), stdin),
    consume: (stdout) => extractInto(stdout, local, wanted, written),
    okCodes: [0, 1],
  });
  return { received: received.sort(), bytes };
}

/** Files up to this size are taken in memory and written while the next ones arrive. */
const BUFFERED_MAX_BYTES = 256 * 1024;
const PARALLEL_WRITES = 16;

/** Writes each tar entry to its file under `local`; an entry not asked for is refused. */
async function extractInto(
  tar: Readable,
  local: string,
  wanted: ReadonlySet<string>,
  written: (path: string, size: number) => void,
): Promise<void> {
  const extract = extractEntries();
  const piping = pipeline(tar, extract);
  piping.catch(() => {}); // reported below, or superseded by the loop's own failure
  const localReal = await realpath(local);
  const folders = new Map<string, Promise<void>>();
  // The tar arrives in order, but the disk is faster with several small writes under way.
  const writes = new WriteQueue(PARALLEL_WRITES);
  try {
    for await (const entry of extract) {
      const path = entry.header.name.replace(/^(\.\/)+/, "");
      if (!wanted.has(path) || entry.header.type !== "file") {
        throw new InfrastructureError(
          `the remote tar sent ${JSON.stringify(entry.header.name)}, not asked for`,
        );
      }
      const target = insideOf(localReal, resolve(localReal, path), path);
      const folder = folderFor(localReal, dirname(target), folders);
      const content = entry as unknown as Readable;
      const header = entry.header;
      const save = async (data: Buffer | Readable) => {
        await folder;
        await saveFile(target, data, header);
        written(path, header.size);
      };
      if (header.size > BUFFERED_MAX_BYTES) await writes.run(() => save(content));
      else await writes.add(save(await readAll(content)));
    }
    await piping;
  } finally {
    await writes.settle();
  }
}

/** At most `limit` writes under way; the first failure is raised by the next call. */
class WriteQueue {
  private readonly pending = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(private readonly limit: number) {}

  /** Tracks a started write, waiting while `limit` are under way. */
  async add(write: Promise<void>): Promise<void> {
    this.raise();
    const tracked = write.then(
      () => void this.pending.delete(tracked),
      (error: unknown) => {
        this.failure ??= { error };
        this.pending.delete(tracked);
      },
    );
    this.pending.add(tracked);
    if (this.pending.size >= this.limit) await Promise.race(this.pending);
    this.raise();
  }

  /** Runs a write alone (a large file is streamed: it cannot wait in memory). */
  async run(write: () => Promise<void>): Promise<void> {
    await this.settle();
    this.raise();
    await write();
  }

  /** Waits for every write under way; raises the first failure. */
  async settle(): Promise<void> {
    await Promise.all(this.pending);
    this.raise();
  }

  private raise(): void {
    if (this.failure) throw this.failure.error;
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Writes one file through a temporary name (a failed transfer leaves the old copy, and
 * a symlink in its place is replaced, not followed), then gives it the remote
 * modification time, which the next sync compares.
 */
async function saveFile(target: string, content: Buffer | Readable, header: Header): Promise<void> {
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(4).toString("hex")}.part`);
  const mode = header.mode & 0o777;
  try {
    if (Buffer.isBuffer(content)) await writeFile(temp, content, { mode, flag: "wx" });
    else await pipeline(content, createWriteStream(temp, { mode, flags: "wx" }));
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await utimes(target, header.mtime, header.mtime);
}

/**
 * Creates the folder under `local` one level at a time, refusing a symlink (or a file)
 * on the way: a symlinked folder would carry the writes outside `local`. Cached per
 * folder, so each is checked once, not once per file.
 */
function folderFor(local: string, folder: string, cache: Map<string, Promise<void>>): Promise<void> {
  if (folder === local) return Promise.resolve();
  let ready = cache.get(folder);
  if (ready === undefined) {
    ready = folderFor(local, dirname(folder), cache).then(() => makeFolder(folder, relative(local, folder)));
    ready.catch(() => {}); // raised by the write that awaits it
    cache.set(folder, ready);
  }
  return ready;
}

async function makeFolder(folder: string, shown: string): Promise<void> {
  const info = await lstat(folder).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  if (info === undefined) {
    await mkdir(folder).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
  } else if (!info.isDirectory()) {
    const what = info.isSymbolicLink() ? "a symlink" : "not a folder";
    throw new InfrastructureError(`refusing to write under ${JSON.stringify(shown)}: it is ${what}`);
  }
}

/** `candidate` if it lies inside `root`; throws otherwise. */
function insideOf(root: string, candidate: string, shown: string): string {
  const rel = relative(root, candidate);
  if (rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new InfrastructureError(`refusing ${JSON.stringify(shown)}: it leads outside ${root}`);
  }
  return candidate;
}
