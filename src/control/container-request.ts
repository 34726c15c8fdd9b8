import { ValidationError } from "../errors.js";
import type { NetworkPolicy } from "../runtime/network-policy.js";

/** The label tying a container to its control-plane container id. */
export const CONTAINER_LABEL = "affinetes.control.container";

/** What a new container takes (validated by the REST layer). */
export interface ContainerRequest {
  disk?: string | undefined;
  diskPath?: string | undefined;
  volumes?: Record<string, { disk: string; readOnly?: boolean | undefined }> | undefined;
  image: string;
  command?: string | undefined;
  initScript?: string | undefined;
  env?: Record<string, string> | undefined;
  metadata?: Record<string, string> | undefined;
  vcpuCount?: number | undefined;
  memSizeMiB?: number | undefined;
  ports?: number[] | undefined;
  /** What it may reach; default the service's (`defaultNetwork`, else `"full"`). */
  network?: NetworkPolicy | undefined;
}

/** Two mounts at one path, or one inside another, would hide each other: refused before anything starts. */
export function checkMountPaths(diskPath: string | undefined, volumePaths: readonly string[]): void {
  const paths = [...(diskPath !== undefined ? [diskPath] : []), ...volumePaths].map((p) =>
    p.replace(/\/+$/, ""),
  );
  for (const [i, a] of paths.entries()) {
    if (a === "") throw new ValidationError("volumes", "a disk cannot be mounted at /");
    for (const b of paths.slice(i + 1)) {
      if (a === b || b.startsWith(`${a}/`) || a.startsWith(`${b}/`))
        throw new ValidationError("volumes", `mounts at ${a} and ${b} overlap`);
    }
  }
}

/** The shell script a container runs: its initialization script, then its command. */
export function taskScript(request: ContainerRequest): string | undefined {
  if (request.command === undefined && request.initScript === undefined) return undefined;
  if (request.initScript === undefined) return request.command;
  if (request.command === undefined) {
    throw new ValidationError(
      "initScript",
      "an initialization script runs before a command: give command too",
    );
  }
  return `set -e\n${request.initScript}\nset +e\n${request.command}`;
}
