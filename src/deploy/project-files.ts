// The local side of a push: which files a project has, their digests, and their tar stream.
import type { Ignore } from "@balena/dockerignore";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream } from "node:fs";
import { lstat, readdir, readFile, readlink, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pack as packEntries } from "tar-stream";
import type { Pack } from "tar-stream";
import { CommandError } from "../errors.js";

// The package is CommonJS whose typings claim a default export; require gives the factory itself.
const dockerignore = createRequire(import.meta.url)("@balena/dockerignore") as (options?: {
  ignorecase?: boolean;
}) => Ignore;

/** A file of a project as it travels: a regular file or a symlink (kept a link). */
export interface ProjectFile {
  /** Path relative to the project folder, `/`-separated. */
  path: string;
  kind: "file" | "symlink";
  /** Permission bits (`0o755`, `0o644`, ...); `0o777` for symlinks. */
  mode: number;
  /** Bytes of content; for a symlink, of its target. */
  size: number;
  mtime: Date;
  /** The link's target (symlinks only). */
  linkname?: string;
}

/** Folders a walk outside git leaves out, at any depth: tools' state, not project files. */
export const SKIPPED_FOLDERS: ReadonlySet<string> = new Set([
  ".git",
  "node_modules",
  ".venv",
  "__pycache__",
  ".affinetes",
]);

/**
 * The project's files under `dir`, sorted by path. In a git work tree: what git tracks
 * plus the untracked files it does not ignore; elsewhere every file, minus
 * `SKIPPED_FOLDERS`. Then `exclude` (gitignore-style patterns) is applied.
 */
export async function listProjectFiles(dir: string, exclude: readonly string[] = []): Promise<ProjectFile[]> {
  const excluded = excludeMatcher(exclude);
  const candidates = (await gitFiles(dir)) ?? (await walkFiles(dir));
  const paths = [...new Set(candidates)].filter((path) => !excluded(path)).sort(byCodePoint);
  const files = await mapLimit(paths, 32, (path) => describeFile(dir, path));
  return files.filter((file): file is ProjectFile => file !== undefined);
}

/**
 * A test on `/`-separated relative paths, true for what the gitignore-style `patterns`
 * exclude: `*.log` matches at any depth, `/build` or `a/b` only from the root, `logs/`
 * only folders (with everything under them), `!keep.log` takes a file back.
 */
export function excludeMatcher(patterns: readonly string[]): (path: string) => boolean {
  const rules = patterns.map(toDockerignore).filter((rule): rule is string => rule !== undefined);
  if (rules.length === 0) return () => false;
  const matcher = dockerignore({ ignorecase: false }).add(rules);
  return (path) => matcher.ignores(path);
}

/** sha256 (hex) of a file's content, read as a stream so large files cost no memory. */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Runs `fn` over `items` with at most `limit` at a time, keeping the order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Files up to this size are read whole, ahead of the packer; larger ones are streamed. */
const READ_AHEAD_MAX_BYTES = 256 * 1024;
const READ_AHEAD_FILES = 32;

/** What a packed entry held: the sha256 (hex) and length of its content, or of a symlink's target. */
export interface PackedContent {
  sha256: string;
  size: number;
}

/**
 * The files as a tar stream (symlinks as links, permission bits kept), read one at a
 * time with a few small ones ahead; `onEntry` runs after each is packed, with the
 * digest of exactly what was packed.
 */
export function packProjectFiles(
  localPath: string,
  files: readonly ProjectFile[],
  onEntry: (file: ProjectFile, content: PackedContent) => void,
): Readable {
  const pack = packEntries();
  // When the remote stops reading, the pack is destroyed: stop waiting on it then.
  const closed = new Promise<never>((_, reject) =>
    pack.once("close", () => reject(new Error("the transfer stream was closed"))),
  );
  closed.catch(() => {});
  const fill = async () => {
    // Reading a few small files ahead keeps the disk busy while the pack is written out.
    const reads = new Map<number, Promise<Buffer | undefined>>();
    const readAhead = (index: number) => {
      const file = files[index];
      if (file === undefined) return;
      const read = readSmall(localPath, file);
      read.catch(() => {}); // a failure is raised when its turn comes
      reads.set(index, read);
    };
    for (let i = 0; i < READ_AHEAD_FILES; i++) readAhead(i);
    for (const [index, file] of files.entries()) {
      const content = await reads.get(index);
      reads.delete(index);
      readAhead(index + READ_AHEAD_FILES);
      onEntry(file, await packEntry(pack, closed, file, content, localPath));
    }
    pack.finalize();
  };
  fill().catch((err: unknown) => pack.destroy(err as Error));
  return pack as unknown as Readable; // a streamx stream: pipes like a Node stream
}

async function readSmall(localPath: string, file: ProjectFile): Promise<Buffer | undefined> {
  if (file.kind !== "file" || file.size > READ_AHEAD_MAX_BYTES) return undefined;
  return readFile(join(localPath, file.path));
}

/** Adds one entry; resolves once the pack took it (its buffer full means waiting for the remote). */
async function packEntry(
  pack: Pack,
  closed: Promise<never>,
  file: ProjectFile,
  content: Buffer | undefined,
  localPath: string,
): Promise<PackedContent> {
  const header = { name: file.path, mode: file.mode, mtime: file.mtime };
  if (file.kind === "symlink") {
    const linkname = file.linkname ?? "";
    quiet(pack.entry({ ...header, type: "symlink", linkname }));
    return { sha256: sha256Of(linkname), size: Buffer.byteLength(linkname) };
  }
  if (content === undefined) return packStreamed(pack, closed, header, join(localPath, file.path));
  const written = new Promise<void>((resolve, reject) =>
    quiet(pack.entry(header, content, (err) => (err ? reject(err) : resolve()))),
  );
  written.catch(() => {}); // when the pack closes first, `closed` reports it
  await Promise.race([written, closed]);
  return { sha256: sha256Of(content), size: content.length };
}

async function packStreamed(
  pack: Pack,
  closed: Promise<never>,
  header: { name: string; mode: number; mtime: Date },
  source: string,
): Promise<PackedContent> {
  // The size is taken now, not at listing: tar-stream fails an entry whose length differs.
  const { size } = await stat(source);
  let sink!: ReturnType<Pack["entry"]>;
  const written = new Promise<void>((resolve, reject) => {
    sink = quiet(pack.entry({ ...header, size }, (err) => (err ? reject(err) : resolve())));
  });
  written.catch(() => {}); // when the pack closes first, `closed` reports it
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(source)) {
    hash.update(chunk as Buffer);
    if (sink.write(chunk as Buffer)) continue;
    const drained = once(sink, "drain");
    drained.catch(() => {});
    await Promise.race([drained, closed]);
  }
  sink.end(undefined); // the typings (streamx) want an argument; undefined writes nothing
  await Promise.race([written, closed]);
  return { sha256: hash.digest("hex"), size };
}

/**
 * An entry's sink emits "error" when the pack is destroyed (the remote went away); the
 * entry's callback and the pack's close already report it, so an unheard event must not
 * crash the process.
 */
function quiet<S extends ReturnType<Pack["entry"]>>(sink: S): S {
  sink.on("error", () => {});
  return sink;
}

/** sha256 (hex) of in-memory content. */
export function sha256Of(content: string | Buffer): string {
  return createHash("sha256").update(content).digest("hex");
}

/**
 * Translates a gitignore pattern to the dockerignore dialect the matcher speaks, where
 * every pattern is anchored at the root and matches everything below a matched folder.
 */
function toDockerignore(pattern: string): string | undefined {
  let rule = pattern.replace(/\s+$/, "");
  if (!rule || rule.startsWith("#")) return undefined;
  const negated = rule.startsWith("!");
  if (negated) rule = rule.slice(1);
  const folderOnly = rule.endsWith("/");
  rule = rule.replace(/\/+$/, "");
  // gitignore anchors a pattern with a slash (other than a trailing one) at the root.
  const anchored = rule.includes("/");
  rule = rule.replace(/^\/+/, "");
  if (!rule) return undefined;
  if (!anchored) rule = `**/${rule}`;
  if (folderOnly) rule = `${rule}/**`;
  return negated ? `!${rule}` : rule;
}

/**
 * `git ls-files` relative to `dir` (also when `dir` is a subfolder of the work tree);
 * undefined when `dir` is not in a work tree or git is not installed.
 */
async function gitFiles(dir: string): Promise<string[] | undefined> {
  const args = ["ls-files", "-z", "-c", "-o", "--exclude-standard"];
  return new Promise((resolve, reject) => {
    execFile("git", args, { cwd: dir, maxBuffer: 1024 ** 3, encoding: "buffer" }, (err, stdout, stderr) => {
      if (!err) return resolve(splitNul(stdout.toString("utf8")));
      const message = stderr.toString("utf8");
      if ((err as { code?: unknown }).code === "ENOENT" || /not a git repository/i.test(message)) {
        return resolve(undefined);
      }
      // Any other failure (e.g. git's "dubious ownership") is not a reason to push ignored files.
      const code = typeof err.code === "number" ? err.code : null;
      reject(new CommandError(`git ${args.join(" ")}`, code, "", message));
    });
  });
}

/** Every path under `dir` except inside `SKIPPED_FOLDERS`; symlinked folders are not entered. */
async function walkFiles(dir: string): Promise<string[]> {
  const paths: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const child of await readdir(join(dir, rel), { withFileTypes: true })) {
      const childRel = rel ? `${rel}/${child.name}` : child.name;
      if (child.isDirectory()) {
        if (!SKIPPED_FOLDERS.has(child.name)) await walk(childRel);
      } else if (!SKIPPED_FOLDERS.has(child.name)) paths.push(childRel);
    }
  };
  await walk("");
  return paths;
}

/** A path's file; undefined for what does not travel (gone from disk, folders, sockets...). */
async function describeFile(dir: string, path: string): Promise<ProjectFile | undefined> {
  const full = join(dir, path);
  const info = await lstat(full).catch((err: NodeJS.ErrnoException) => {
    // git still lists a tracked file deleted from disk until the deletion is staged.
    if (err.code === "ENOENT" || err.code === "ENOTDIR") return undefined;
    throw err;
  });
  if (info?.isSymbolicLink()) {
    const linkname = await readlink(full);
    return {
      path,
      kind: "symlink",
      mode: 0o777,
      size: Buffer.byteLength(linkname),
      mtime: info.mtime,
      linkname,
    };
  }
  if (!info?.isFile()) return undefined;
  return { path, kind: "file", mode: info.mode & 0o777, size: info.size, mtime: info.mtime };
}

/** git's NUL-separated paths; a trailing "/" marks a nested repository, which is not ours to send. */
function splitNul(text: string): string[] {
  return text.split("\0").filter((path) => path !== "" && !path.endsWith("/"));
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
