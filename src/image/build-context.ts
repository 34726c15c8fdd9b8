import type { Ignore } from "@balena/dockerignore";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join, relative, sep } from "node:path";
import type { Readable } from "node:stream";
import { pack as packDirectory } from "tar-fs";
import { pack as packEntries } from "tar-stream";

// The package is CommonJS whose typings claim a default export; require gives the factory itself.
const dockerignore = createRequire(import.meta.url)("@balena/dockerignore") as (options?: {
  ignorecase?: boolean;
}) => Ignore;

/** Extra files added to a context (e.g. a generated Dockerfile). */
export type ExtraFiles = Readonly<Record<string, string>>;

/**
 * Streams a folder as a tar build context, leaving out what its `.dockerignore` excludes,
 * as `docker build` does. With `prefix`, the folder's files go under that folder of the
 * context. `extra` files are added at the context's root (and win over the folder's).
 */
export async function folderContext(dir: string, extra: ExtraFiles = {}, prefix = ""): Promise<Readable> {
  const ignored = await dockerignoreFilter(dir);
  const replaced = new Set(prefix ? [] : Object.keys(extra));
  const tar = packDirectory(dir, {
    ignore: (name) => {
      const rel = relative(dir, name).split(sep).join("/");
      if (replaced.has(rel)) return true;
      if (!rel) return false;
      return ignored(rel);
    },
    ...(prefix
      ? { map: (header) => ({ ...header, name: header.name === "." ? prefix : `${prefix}/${header.name}` }) }
      : {}),
    finalize: false,
    finish: (pack) => {
      for (const [name, content] of Object.entries(extra)) pack.entry({ name, mode: 0o644 }, content);
      pack.finalize();
    },
  });
  return tar as unknown as Readable; // a streamx stream: pipes like a Node stream
}

/**
 * The folder's `.dockerignore` as a test on context paths (`a/b.txt`, `/`-separated):
 * true for what `docker build` leaves out. `Dockerfile` and `.dockerignore` are always kept.
 */
export async function dockerignoreFilter(dir: string): Promise<(relativePath: string) => boolean> {
  const rules = await readFile(join(dir, ".dockerignore"), "utf8").catch(() => "");
  const matcher = dockerignore({ ignorecase: false }).add(rules.split(/\r?\n/));
  const always = new Set(["Dockerfile", ".dockerignore"]);
  return (rel) => !always.has(rel) && matcher.ignores(rel);
}

/** A tar context made only of in-memory files. */
export function filesContext(files: ExtraFiles): Readable {
  const pack = packEntries();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, content);
  pack.finalize();
  return pack as unknown as Readable;
}
