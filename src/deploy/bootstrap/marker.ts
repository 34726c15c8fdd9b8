import { createHash } from "node:crypto";
import { posix } from "node:path";
import { shellQuote } from "../../util/shell-quote.js";
import type { Host } from "../../host/host.js";
import type { BackendName } from "./bootstrap-backend.js";

/** The workspace folder where affinetes keeps its own files (markers, the image name). */
export const STATE_DIR = ".affinetes";

const MARKER_VERSION = 1;

/** What the last successful `prepare` of a backend recorded. */
export interface BootstrapMarker {
  version: number;
  backend: BackendName;
  /** Fingerprint of the inputs the environment was made from. */
  inputs: string;
  detail: string;
  preparedAt: string;
}

/** `<workspace>/.affinetes/<name>`. */
export function statePath(workspace: string, name: string): string {
  return posix.join(workspace, STATE_DIR, name);
}

function markerPath(workspace: string, backend: BackendName): string {
  return statePath(workspace, `bootstrap-${backend}.json`);
}

/** The backend's marker in the workspace; undefined when missing or unreadable (which forces a new run). */
export async function readMarker(
  host: Host,
  workspace: string,
  backend: BackendName,
): Promise<BootstrapMarker | undefined> {
  const data = await host.readFile(markerPath(workspace, backend));
  if (!data) return undefined;
  try {
    const marker = JSON.parse(data.toString("utf8")) as Partial<BootstrapMarker>;
    if (marker.version !== MARKER_VERSION || marker.backend !== backend) return undefined;
    if (typeof marker.inputs !== "string" || typeof marker.detail !== "string") return undefined;
    return marker as BootstrapMarker;
  } catch {
    return undefined;
  }
}

/** Records a successful run. */
export async function writeMarker(
  host: Host,
  workspace: string,
  marker: Omit<BootstrapMarker, "version" | "preparedAt">,
): Promise<void> {
  await host.mkdir(posix.join(workspace, STATE_DIR));
  const full: BootstrapMarker = { version: MARKER_VERSION, ...marker, preparedAt: new Date().toISOString() };
  await host.writeFile(markerPath(workspace, marker.backend), `${JSON.stringify(full, null, 2)}\n`);
}

/** Removes the backend's marker, so that the next run cannot skip (done before an install starts). */
export async function clearMarker(host: Host, workspace: string, backend: BackendName): Promise<void> {
  await host.exec(`rm -f ${shellQuote(markerPath(workspace, backend))}`);
}

/**
 * A fingerprint of named inputs: a missing input differs from an empty one, and the
 * names are part of it (moving content from one file to another changes it).
 */
export function fingerprint(inputs: Readonly<Record<string, string | Buffer | undefined>>): string {
  const hash = createHash("sha256");
  for (const name of Object.keys(inputs).sort()) {
    const value = inputs[name];
    hash.update(`${name}\0`);
    if (value === undefined) {
      hash.update("missing\0");
    } else {
      const bytes = typeof value === "string" ? Buffer.from(value) : value;
      hash.update(`${bytes.length}\0`);
      hash.update(bytes);
    }
  }
  return hash.digest("hex");
}
