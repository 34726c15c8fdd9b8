import { stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { Readable, Transform } from "node:stream";
import type { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { z } from "zod";
import { AffinetesError, CommandError, InfrastructureError, ValidationError } from "../errors.js";
import { Deadline } from "../util/deadline.js";
import { shellQuote } from "../util/shell-quote.js";
import type { Host } from "../host/host.js";
import { hashFile, listProjectFiles, mapLimit, packProjectFiles, sha256Of } from "./project-files.js";
import type { PackedContent, ProjectFile } from "./project-files.js";

/** What `pushProject` sends, and where. */
export interface PushOptions {
  /** The local project folder. */
  localPath: string;
  /** Name of the remote workspace (`[A-Za-z0-9._-]+`); default: the folder's name. */
  project?: string;
  /** Remote folder holding workspaces and their manifests; `~/` is the remote home. Default `~/.affinetes`. */
  root?: string;
  /** Extra gitignore-style patterns of files to leave out. */
  exclude?: readonly string[];
  /** Called after each file is handed to the transfer. */
  onProgress?: (p: { files: number; totalFiles: number; bytes: number }) => void;
  /** Upper bound for the whole push, in milliseconds. */
  timeoutMs?: number;
  /** Cancels the push; it then rejects with `AbortedError`. */
  signal?: AbortSignal;
}

/** What a push did. */
export interface PushReport {
  /** Absolute remote path of the workspace: `<root>/workspaces/<project>`. */
  workspace: string;
  /** Relative paths that travelled (new or changed since the last push). */
  sent: string[];
  /** Relative paths removed remotely (pushed before, gone locally). */
  deleted: string[];
  /** Files already up to date remotely. */
  unchanged: number;
  /** Bytes of file content sent. */
  bytes: number;
}

/** A pushed file as the manifest remembers it. `mode` carries the type bits, so a file turned symlink differs. */
interface ManifestEntry {
  sha256: string;
  size: number;
  mode: number;
  /** The local file's modification time when pushed: unchanged with its size, its hash is not recomputed. */
  mtimeMs?: number;
}

type Manifest = Record<string, ManifestEntry>;

const manifestSchema = z.object({
  version: z.literal(1),
  files: z.record(
    z.string(),
    z.object({ sha256: z.string(), size: z.number(), mode: z.number(), mtimeMs: z.number().optional() }),
  ),
});

const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const PROJECT_NAME = /^[A-Za-z0-9._-]+$/;

/**
 * Brings the remote workspace `<root>/workspaces/<project>` up to date with the local
 * project: only files whose content or mode changed since the last push travel (one tar
 * stream), and files pushed before but gone locally are removed. Files the remote created
 * itself (results, caches) are never touched.
 */
export async function pushProject(host: Host, options: PushOptions): Promise<PushReport> {
  const checked = await checkPushOptions(options);
  const deadline = new Deadline(`push of ${checked.project}`, options);
  try {
    deadline.check();
    return await push(host, checked, options, deadline);
  } catch (err) {
    throw deadline.fired ? deadline.error(err) : typedFailure(err, `push of ${checked.project}`);
  }
}

/** Where a project lives on the host. */
interface RemoteTarget {
  workspace: string;
  manifestDir: string;
  manifestPath: string;
}

async function push(
  host: Host,
  { localPath, project, root }: { localPath: string; project: string; root: string },
  options: PushOptions,
  deadline: Deadline,
): Promise<PushReport> {
  const target = await remoteTarget(host, root, project);
  const [files, previous] = await Promise.all([
    listProjectFiles(localPath, options.exclude ?? []),
    readManifest(host, target),
  ]);
  // Without a manifest everything travels, hashed as it is packed: no need to read it twice.
  const next = previous.current ? await manifestOf(localPath, files, previous.files, deadline) : {};
  const changed = files.filter((file) => !sameEntry(previous.files[file.path], next[file.path]));
  const paths = new Set(files.map((file) => file.path));
  const deleted = Object.keys(previous.files)
    .filter((path) => !paths.has(path))
    .sort();
  // Deleting first lets a path that turned from a file into a folder (or back) extract cleanly.
  if (deleted.length > 0) await removeRemote(host, target.workspace, deleted, deadline);
  // Sent also when nothing changed but the workspace is new: that creates its folders.
  const bytes =
    changed.length > 0 || !previous.current
      ? await sendFiles(host, target, { localPath, files: changed, manifest: next }, options, deadline)
      : 0;
  // Written last: a push interrupted before this point is redone from the old manifest.
  const touched = files.some((file) => next[file.path]?.mtimeMs !== previous.files[file.path]?.mtimeMs);
  if (changed.length > 0 || deleted.length > 0 || !previous.current || touched) {
    deadline.check();
    await host.writeFile(target.manifestPath, JSON.stringify({ version: 1, files: next }));
  }
  const sent = changed.map((file) => file.path);
  return { workspace: target.workspace, sent, deleted, unchanged: files.length - sent.length, bytes };
}

async function remoteTarget(host: Host, root: string, project: string): Promise<RemoteTarget> {
  const base = await absoluteRemotePath(host, root);
  const manifestDir = `${base}/workspaces/.manifests`;
  return {
    workspace: `${base}/workspaces/${project}`,
    manifestDir,
    manifestPath: `${manifestDir}/${project}.json`,
  };
}

/**
 * A failure as an affinetes error: local file and SFTP errors become an
 * `InfrastructureError` naming the operation, their original kept as `cause`.
 * @internal shared by push and syncResults.
 */
export function typedFailure(err: unknown, what: string): AffinetesError {
  if (err instanceof AffinetesError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InfrastructureError(`${what} failed: ${message}`, { cause: err });
}

async function checkPushOptions(
  options: PushOptions,
): Promise<{ localPath: string; project: string; root: string }> {
  if (typeof options?.localPath !== "string" || options.localPath === "") {
    throw new ValidationError("localPath", "give the local project folder");
  }
  const localPath = resolve(options.localPath);
  const info = await stat(localPath).catch(() => undefined);
  if (!info?.isDirectory()) throw new ValidationError("localPath", `${localPath} is not a folder`);
  const project = options.project ?? basename(localPath);
  // "." and ".." would name the workspaces folder or its parent; ".manifests" the manifests.
  if (!PROJECT_NAME.test(project) || [".", "..", ".manifests"].includes(project)) {
    const hint = options.project === undefined ? " (the folder's name; pass `project`)" : "";
    throw new ValidationError("project", `${JSON.stringify(project)} is not a valid name${hint}`);
  }
  const root = options.root ?? "~/.affinetes";
  if (typeof root !== "string" || root.trim() === "" || root.includes("\0")) {
    throw new ValidationError("root", "give a remote folder");
  }
  if (options.exclude !== undefined && !options.exclude.every((p) => typeof p === "string")) {
    throw new ValidationError("exclude", "give a list of patterns");
  }
  return { localPath, project, root };
}

/** `path` on the host as an absolute path: `~/` and relative paths are taken from the home. */
export async function absoluteRemotePath(host: Host, path: string): Promise<string> {
  const resolved = await host.resolvePath(path);
  const absolute = resolved.startsWith("/") ? resolved : `${await host.home()}/${resolved}`;
  return absolute.length > 1 ? absolute.replace(/\/+$/, "") : absolute;
}

/** The manifest entries the local files would have once pushed. */
async function manifestOf(
  localPath: string,
  files: readonly ProjectFile[],
  previous: Manifest,
  deadline: Deadline,
): Promise<Manifest> {
  const entries = await mapLimit(files, 16, async (file) => {
    deadline.check();
    // rsync's quick check: same size and modification time as when pushed, same content
    const last = previous[file.path];
    const known = entryOf(file, { sha256: last?.sha256 ?? "", size: file.size });
    if (last && last.mtimeMs === known.mtimeMs && last.size === known.size && last.mode === known.mode)
      return [file.path, known] as const;
    const sha256 =
      file.kind === "symlink" ? sha256Of(file.linkname ?? "") : await hashFile(join(localPath, file.path));
    return [file.path, entryOf(file, { sha256, size: file.size })] as const;
  });
  return Object.fromEntries(entries);
}

function entryOf(file: ProjectFile, content: PackedContent): ManifestEntry {
  return {
    ...content,
    mode: (file.kind === "symlink" ? S_IFLNK : S_IFREG) | file.mode,
    mtimeMs: file.mtime.getTime(),
  };
}

/**
 * The last push's manifest. `current` is false when there is none (or it cannot be read,
 * or the workspace is gone): then everything is sent and the manifest rewritten.
 */
async function readManifest(
  host: Host,
  target: RemoteTarget,
): Promise<{ files: Manifest; current: boolean }> {
  const [data, folder] = await Promise.all([host.readFile(target.manifestPath), host.stat(target.workspace)]);
  if (data === undefined || !folder?.isDirectory) return { files: {}, current: false };
  let json: unknown;
  try {
    json = JSON.parse(data.toString("utf8"));
  } catch {
    return { files: {}, current: false };
  }
  const parsed = manifestSchema.safeParse(json);
  // A path that could leave the workspace would make the deletion step unsafe.
  if (!parsed.success || !Object.keys(parsed.data.files).every(isPlainRelative)) {
    return { files: {}, current: false };
  }
  return { files: parsed.data.files, current: true };
}

function isPlainRelative(path: string): boolean {
  return (
    path !== "" && !path.startsWith("/") && path.split("/").every((p) => p !== "" && p !== "." && p !== "..")
  );
}

function sameEntry(a: ManifestEntry | undefined, b: ManifestEntry | undefined): boolean {
  return (
    a !== undefined && b !== undefined && a.sha256 === b.sha256 && a.mode === b.mode && a.size === b.size
  );
}

/** Removes files from the workspace (list on stdin), then the folders they leave empty. */
async function removeRemote(
  host: Host,
  workspace: string,
  paths: string[],
  deadline: Deadline,
): Promise<void> {
  const remove =
    'rm -f -- "$@"; s=$?; for f in "$@"; do d=$(dirname -- "$f"); ' +
    '[ "$d" = . ] || rmdir -p --ignore-fail-on-non-empty -- "$d" 2>/dev/null; done; exit $s';
  const script = `cd -- ${shellQuote(workspace)} && xargs -0 -r sh -c ${shellQuote(remove)} sh`;
  await runRemotePipe(host, `sh -c ${shellQuote(script)}`, deadline, {
    feed: (stdin) => pipeline(Readable.from([Buffer.from(paths.join("\0") + "\0")]), stdin),
  });
}

/**
 * Sends the files as one tar stream extracted in the workspace, recording each in
 * `manifest` as it was packed; returns the bytes of content sent.
 */
async function sendFiles(
  host: Host,
  target: RemoteTarget,
  send: { localPath: string; files: readonly ProjectFile[]; manifest: Manifest },
  options: PushOptions,
  deadline: Deadline,
): Promise<number> {
  const ws = shellQuote(target.workspace);
  // -m: changed files get the remote's "now", so build tools there see them as new;
  // --no-same-owner: they belong to the remote user, not to the local uid in the headers.
  const script = `mkdir -p -- ${ws} ${shellQuote(target.manifestDir)} && tar -x -m --no-same-owner -f - -C ${ws}`;
  let bytes = 0;
  let count = 0;
  const packed = (file: ProjectFile, content: PackedContent) => {
    send.manifest[file.path] = entryOf(file, content);
    if (file.kind === "file") bytes += content.size;
    options.onProgress?.({ files: ++count, totalFiles: send.files.length, bytes });
  };
  const tar = packProjectFiles(send.localPath, send.files, packed);
  await runRemotePipe(host, `sh -c ${shellQuote(script)}`, deadline, {
    feed: (stdin) => pipeline(tar, coalesce(), stdin),
  });
  return bytes;
}

/**
 * Gathers the pack's many small pieces (512-byte headers, paddings, small files) into
 * chunks of at least `size` bytes: every write to an SSH channel costs a packet.
 */
function coalesce(size = 64 * 1024): Transform {
  let parts: Buffer[] = [];
  let length = 0;
  const take = () => {
    const out = Buffer.concat(parts, length);
    parts = [];
    length = 0;
    return out;
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      parts.push(chunk);
      length += chunk.length;
      callback(null, length >= size ? take() : undefined);
    },
    flush(callback) {
      callback(null, length > 0 ? take() : undefined);
    },
  });
}

/** How a remote command's streams are used by `runRemotePipe`. */
export interface RemotePipe {
  /** Writes the command's stdin and ends it (default: ends it at once). */
  feed?: (stdin: Writable) => Promise<void>;
  /** Reads the command's stdout to its end (default: discards it). */
  consume?: (stdout: Readable) => Promise<void>;
  /** Exit codes that mean success (default `[0]`). */
  okCodes?: readonly number[];
}

/**
 * Runs `command` on the host with its stdin and stdout streamed, bounded by `deadline`
 * (the remote command's whole tree is ended when it fires). A local stream failure wins over the
 * remote's complaint about it; otherwise a bad exit code is a `CommandError` with stderr.
 * Returns the exit code (one of `okCodes`).
 * @internal shared by push and syncResults.
 */
export async function runRemotePipe(
  host: Host,
  command: string,
  deadline: Deadline,
  pipe: RemotePipe,
): Promise<number> {
  deadline.check();
  // the deadline ends the remote command's whole tree; `exit` then resolves
  const proc = await host.spawn(command, deadline.signal ? { signal: deadline.signal } : {});
  const stderr = collectTail(proc.stderr);
  const errors: { feed?: unknown; consume?: unknown } = {};
  const fail = (side: "feed" | "consume") => (err: unknown) => {
    errors[side] ??= err;
    void proc.kill();
  };
  const feed = pipe.feed ?? ((stdin: Writable) => Promise.resolve(void stdin.end()));
  const consume = pipe.consume ?? ((stdout: Readable) => Promise.resolve(void stdout.resume()));
  feed(proc.stdin).catch(fail("feed"));
  const consuming = consume(proc.stdout).then(() => undefined, fail("consume"));
  const code = await proc.exit;
  const ok = (pipe.okCodes ?? [0]).includes(code);
  const failure = pipeFailure({ command, code, ok, deadline, errors, stderr: stderr() });
  // The local side stops before this settles: no file is written after a rejection.
  if (failure !== undefined) proc.stdout.destroy();
  await consuming;
  if (failure !== undefined) throw failure.error;
  if (errors.consume !== undefined) throw errors.consume;
  return code;
}

/**
 * Why a remote pipe failed, if it did, in order of blame: the deadline, the local input
 * (the remote only complains about its consequence), the remote's own exit status, the
 * local output, a channel closed without a status.
 */
function pipeFailure(run: {
  command: string;
  code: number;
  ok: boolean;
  deadline: Deadline;
  errors: { feed?: unknown; consume?: unknown };
  stderr: string;
}): { error: unknown } | undefined {
  if (run.deadline.fired) return { error: run.deadline.error() };
  if (run.errors.feed !== undefined) return { error: run.errors.feed };
  if (!run.ok && run.code !== -1) return { error: new CommandError(run.command, run.code, "", run.stderr) };
  if (run.errors.consume !== undefined) return { error: run.errors.consume };
  if (!run.ok) {
    const why = run.stderr || "the remote command ended without an exit status";
    return { error: new CommandError(run.command, null, "", why) };
  }
  return undefined;
}

/** Keeps the last `max` characters a stream writes (for error messages). */
function collectTail(stream: Readable, max = 64 * 1024): () => string {
  let text = "";
  stream.on("data", (chunk: Buffer) => {
    text = (text + chunk.toString("utf8")).slice(-max);
  });
  return () => text;
}
