import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir, readlink, stat } from "node:fs/promises";
import { join } from "node:path";
import { once } from "node:events";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { extract as extractEntries, pack as packEntries } from "tar-stream";
import { ValidationError } from "../errors.js";
import type { Pack } from "tar-stream";

/** One entry of a build context, read from the client machine when the context is packed. */
export interface ContextEntry {
  /** Path inside the context, `/`-separated. */
  name: string;
  kind: "file" | "directory" | "symlink";
  /** Permission bits: Docker keeps them in the image, so they are part of the hash. */
  mode: number;
  mtime: Date;
  /** The file on disk (files only). */
  source?: string;
  /** The link's target (symlinks only). */
  linkname?: string;
}

/**
 * A folder's entries, depth first in name order, named `prefix/<path>` (or `<path>`
 * without a prefix). `skip` sees `/`-separated paths relative to `dir`; a skipped folder
 * is left out with everything under it. Symlinks stay links; sockets and fifos are left out.
 */
export async function listFolder(
  dir: string,
  prefix = "",
  skip: (relativePath: string) => boolean = () => false,
): Promise<ContextEntry[]> {
  const entries: ContextEntry[] = [];
  const walk = async (rel: string): Promise<void> => {
    const children = await readdir(join(dir, rel), { withFileTypes: true });
    children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const child of children) {
      const childRel = rel ? `${rel}/${child.name}` : child.name;
      if (skip(childRel)) continue;
      const path = join(dir, childRel);
      const name = prefix ? `${prefix}/${childRel}` : childRel;
      const info = await lstat(path);
      const base = { name, mode: info.mode & 0o7777, mtime: info.mtime };
      if (info.isDirectory()) {
        entries.push({ ...base, kind: "directory" });
        await walk(childRel);
      } else if (info.isSymbolicLink()) {
        entries.push({ ...base, kind: "symlink", linkname: await readlink(path) });
      } else if (info.isFile()) {
        entries.push({ ...base, kind: "file", source: path });
      }
    }
  };
  await walk("");
  return entries;
}

/** A file (one entry named `name`) or a folder (`name` and everything under it), symlinks followed at the top. */
export async function listPath(path: string, name: string): Promise<ContextEntry[]> {
  const info = await stat(path);
  const base = { name, mode: info.mode & 0o7777, mtime: info.mtime };
  if (info.isFile()) return [{ ...base, kind: "file", source: path }];
  if (!info.isDirectory()) throw new Error(`${path} is neither a file nor a folder`);
  return [{ ...base, kind: "directory" }, ...(await listFolder(path, name))];
}

/**
 * sha256 (hex) over the Dockerfile and every entry's name, kind, mode and content (or
 * link target), in name order. Timestamps and owners are left out: the same files give
 * the same hash on every machine.
 */
export async function hashContext(dockerfile: string, entries: readonly ContextEntry[]): Promise<string> {
  const hash = createHash("sha256");
  hash.update(`affinetes-image/1\0${dockerfile}\0`);
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of sorted) {
    hash.update(`${entry.kind}\0${entry.name}\0${entry.mode.toString(8)}\0`);
    if (entry.kind === "symlink") hash.update(entry.linkname ?? "");
    if (entry.kind === "file") hash.update(await fileDigest(entry.source ?? ""));
    hash.update("\n");
  }
  return hash.digest("hex");
}

/** The Dockerfile of a received context is held in memory: it must stay small. */
const MAX_DOCKERFILE_BYTES = 1024 * 1024;

/**
 * `hashContext` of a packed context, computed from the tar itself (as `packContext`
 * wrote it): a builder that receives a context checks the hash it was told against it.
 */
export async function hashPackedContext(tar: Readable): Promise<string> {
  const extract = extractEntries();
  let dockerfile: string | undefined;
  const digests: Array<{ name: string; line: string }> = [];
  extract.on("entry", (header, stream, next) => {
    const kind = header.type === "directory" ? "directory" : header.type === "symlink" ? "symlink" : "file";
    const name = header.name.replace(/\/$/, "");
    const chunks: Buffer[] = [];
    const hash = createHash("sha256");
    let held = 0;
    // a truncated or aborted upload fails the entry too: the pipeline reports it, the process must not crash
    stream.on("error", () => undefined);
    stream.on("data", (data: unknown) => {
      const chunk = data as Buffer;
      if (name !== "Dockerfile") return void hash.update(chunk);
      held += chunk.length;
      if (held > MAX_DOCKERFILE_BYTES)
        extract.destroy(new ValidationError("context", `a Dockerfile over ${MAX_DOCKERFILE_BYTES} bytes`));
      else chunks.push(chunk);
    });
    stream.on("end", () => {
      if (name === "Dockerfile") dockerfile = Buffer.concat(chunks).toString("utf8");
      else {
        const content =
          kind === "symlink" ? (header.linkname ?? "") : kind === "file" ? hash.digest("hex") : "";
        digests.push({
          name,
          line: `${kind}\0${name}\0${((header.mode ?? 0) & 0o7777).toString(8)}\0${content}\n`,
        });
      }
      next();
    });
    stream.resume();
  });
  await pipeline(tar, extract);
  if (dockerfile === undefined) throw new ValidationError("context", "the build context holds no Dockerfile");
  const hash = createHash("sha256");
  hash.update(`affinetes-image/1\0${dockerfile}\0`);
  for (const entry of digests.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)))
    hash.update(entry.line);
  return hash.digest("hex");
}

/** Streams the Dockerfile (as `Dockerfile`) and the entries as a tar build context, one file at a time. */
export function packContext(dockerfile: string, entries: readonly ContextEntry[]): Readable {
  const pack = packEntries();
  const fill = async () => {
    pack.entry({ name: "Dockerfile", mode: 0o644 }, dockerfile);
    for (const entry of entries) {
      const header = { name: entry.name, mode: entry.mode, mtime: entry.mtime };
      if (entry.kind === "directory") pack.entry({ ...header, type: "directory" });
      else if (entry.kind === "symlink")
        pack.entry({ ...header, type: "symlink", linkname: entry.linkname ?? "" });
      else await packFile(pack, header, entry.source ?? "");
    }
    pack.finalize();
  };
  fill().catch((err: unknown) => pack.destroy(err as Error));
  return pack as unknown as Readable; // a streamx stream: pipes like a Node stream
}

async function packFile(pack: Pack, header: { name: string; mode: number; mtime: Date }, source: string) {
  const { size } = await stat(source);
  let sink!: ReturnType<Pack["entry"]>;
  const written = new Promise<void>((resolve, reject) => {
    sink = pack.entry({ ...header, size }, (err) => (err ? reject(err) : resolve()));
  });
  // When the engine stops reading, the pack closes: stop waiting on it then.
  const closed = new Promise<never>((_, reject) =>
    pack.once("close", () => reject(new Error("the build context stream was closed"))),
  );
  closed.catch(() => {});
  for await (const chunk of createReadStream(source)) {
    if (!sink.write(chunk as Buffer)) await Promise.race([once(sink, "drain"), closed]);
  }
  sink.end(undefined); // the typings (streamx) want an argument; undefined writes nothing
  await Promise.race([written, closed]);
}

async function fileDigest(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
