import type { Ignore } from "@balena/dockerignore";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { STATE_DIR } from "./marker.js";
import type { PrepareContext } from "./prepare-workspace.js";

// The package is CommonJS whose typings claim a default export; require gives the factory itself.
const dockerignore = createRequire(import.meta.url)("@balena/dockerignore") as (options?: {
  ignorecase?: boolean;
}) => Ignore;

/** Bound on the listing of a build context (paths and hashes), far above any sensible context. */
const MAX_LISTING_BYTES = 256 * 1024 * 1024;

// Every entry as four NUL-terminated fields: type, mode, path, link target (empty unless a
// link); then, after a lone "--", each regular file's sha256. Paths may hold anything but NUL.
const LIST_CONTEXT = [
  `find . -path ./${STATE_DIR} -prune -o ! -path . -printf '%y\\0%m\\0%P\\0%l\\0'`,
  "printf -- '--\\0'",
  `find . -path ./${STATE_DIR} -prune -o -type f -print0 | xargs -0 -r sha256sum -z --`,
].join(" && ");

/**
 * A workspace's Docker build context as `docker build` sees it: every path its
 * `.dockerignore` keeps (`paths`), and a fingerprint of them with type, mode, link target
 * and content. The workspace's `.affinetes/` folder (where the marker lives) is left out.
 * Hashing runs on the host; only the listing travels.
 */
export async function readBuildContext(
  ctx: PrepareContext,
): Promise<{ fingerprint: string; paths: string[] }> {
  const rules = (await ctx.read(".dockerignore"))?.toString("utf8") ?? "";
  const matcher = dockerignore({ ignorecase: false }).add(rules.split(/\r?\n/));
  const always = new Set(["Dockerfile", ".dockerignore"]);
  const kept = (path: string) => always.has(path) || !matcher.ignores(path);

  const listing = await ctx.query(LIST_CONTEXT, { maxOutputBytes: MAX_LISTING_BYTES });
  const [entries = "", sums = ""] = listing.split("--\0");
  const hashes = new Map<string, string>();
  for (const line of sums.split("\0")) {
    const match = /^([0-9a-f]{64}) [ *]\.\/(.*)$/s.exec(line);
    if (match) hashes.set(match[2] as string, match[1] as string);
  }
  const fields = entries.split("\0");
  const records: string[] = [];
  const paths: string[] = [];
  for (let i = 0; i + 3 < fields.length; i += 4) {
    const [type, mode, path, target] = fields.slice(i, i + 4) as [string, string, string, string];
    if (!kept(path)) continue;
    paths.push(path);
    records.push(`${type}\0${mode}\0${path}\0${type === "l" ? target : (hashes.get(path) ?? "")}`);
  }
  const hash = createHash("sha256");
  for (const record of records.sort()) hash.update(`${record}\0`);
  return { fingerprint: hash.digest("hex"), paths };
}
