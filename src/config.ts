import { homedir } from "node:os";
import { join } from "node:path";
import { ValidationError } from "./errors.js";
import { imageRefSchema } from "./image/image-ref.js";

/** Base image used for environments without a Dockerfile (and passed as build arg `BASE_IMAGE`). */
export const DEFAULT_BASE_IMAGE = "python:3.12-slim";

/** Port the injected method server listens on inside a container. */
export const SERVER_PORT = 8000;

/**
 * The base image builds use: the `AFFINETES_BASE_IMAGE` setting when present (air-gapped
 * sites and CI point it at a local image), else the public default.
 */
export function configuredBaseImage(): string {
  return process.env.AFFINETES_BASE_IMAGE || DEFAULT_BASE_IMAGE;
}

/** The setting that maps base images to the ones a site can reach. */
const IMAGE_REWRITE_VAR = "AFFINETES_IMAGE_REWRITE";

/**
 * The base image to build from instead of `ref`, per `AFFINETES_IMAGE_REWRITE`: a
 * comma-separated list of `from=to` rules, e.g.
 * `python:3.11-slim=affinetes/python:3.11,*=mirror.local/base:1`. A rule whose `from` is
 * the same reference as `ref` wins (`python` and `python:latest`, `docker.io/library/python:3`
 * and `python:3` are the same); otherwise `*=to`, when given, maps every reference but
 * `scratch`. One pass, no chaining; unset or empty, `ref` is returned unchanged. A
 * malformed setting is a `ValidationError`.
 */
export function rewriteBaseImage(ref: string): string {
  const rules = parseImageRewrite(process.env[IMAGE_REWRITE_VAR] ?? "");
  if (rules.size === 0) return ref;
  const exact = rules.get(normalizeImageRef(ref));
  if (exact !== undefined) return exact;
  const fallback = rules.get("*");
  return fallback !== undefined && ref !== "scratch" ? fallback : ref;
}

function parseImageRewrite(setting: string): Map<string, string> {
  const rules = new Map<string, string>();
  for (const entry of setting.split(",")) {
    if (!entry.trim()) continue;
    const eq = entry.indexOf("=");
    const from = entry.slice(0, eq).trim();
    const to = entry.slice(eq + 1).trim();
    if (eq < 0 || !from || !to) {
      throw new ValidationError(
        IMAGE_REWRITE_VAR,
        `expected from=to rules separated by commas, got "${entry}"`,
      );
    }
    for (const side of from === "*" ? [to] : [from, to]) {
      if (!imageRefSchema.safeParse(side).success) {
        throw new ValidationError(IMAGE_REWRITE_VAR, `"${side}" is not an image reference`);
      }
    }
    const key = from === "*" ? from : normalizeImageRef(from);
    if (rules.has(key)) throw new ValidationError(IMAGE_REWRITE_VAR, `two rules for "${from}"`);
    rules.set(key, to);
  }
  return rules;
}

/** Docker's spelling of a reference: `python` -> `python:latest`, without `docker.io/library/`. */
function normalizeImageRef(ref: string): string {
  let name = ref.replace(/^(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)\//, "");
  name = name.replace(/^library\/(?=[^/]+$|[^/]+[:@])/, "");
  const slash = name.lastIndexOf("/");
  const hasTag = name.lastIndexOf(":") > slash || name.includes("@");
  return hasTag || name.startsWith("sha256:") ? name : `${name}:latest`;
}

/** Where affinetes keeps per-user state: `AFFINETES_STATE_DIR`, else the XDG state dir. */
export function stateDir(): string {
  if (process.env.AFFINETES_STATE_DIR) return process.env.AFFINETES_STATE_DIR;
  const base = process.env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return join(base, "affinetes");
}

/** The Python interpreter the process runtime uses: `AFFINETES_PYTHON`, else `python3`. */
export function configuredPython(): string {
  return process.env.AFFINETES_PYTHON || "python3";
}
