import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { DockerConnection } from "./docker-connection.js";

/** What the reaper process reads on stdin. */
export interface ReapRequest {
  connection: DockerConnection;
  ids: string[];
}

/**
 * Removes containers synchronously, for the moment the client exits ('exit' handlers
 * cannot await). A short-lived Node process makes the engine calls; we wait for it.
 */
export function reapContainersSync(connection: DockerConnection, ids: readonly string[]): void {
  if (ids.length === 0) return;
  const script = reaperScript();
  if (!script) return;
  const request: ReapRequest = { connection, ids: [...ids] };
  spawnSync(process.execPath, [script], {
    input: JSON.stringify(request),
    stdio: ["pipe", "ignore", "inherit"],
    timeout: 15_000,
  });
}

/** The compiled reaper next to this module, or in dist/ when running from the TypeScript sources. */
function reaperScript(): string | undefined {
  const candidates = [
    new URL("./reaper-main.js", import.meta.url),
    new URL("../../../dist/runtime/docker/reaper-main.js", import.meta.url),
  ];
  return candidates.map((url) => fileURLToPath(url)).find((path) => existsSync(path));
}

/** Containers queued for removal at exit, by engine: one reaper per engine, not one per container. */
const queued = new Map<string, { connection: DockerConnection; ids: string[] }>();

/** Queues a container for `flushReaps` (the exit handler's batch). */
export function queueReap(connection: DockerConnection, id: string): void {
  const key = JSON.stringify(connection);
  const entry = queued.get(key) ?? { connection, ids: [] };
  entry.ids.push(id);
  queued.set(key, entry);
}

/** Removes every queued container, synchronously, one reaper process per engine. */
export function flushReaps(): void {
  for (const { connection, ids } of queued.values()) reapContainersSync(connection, ids);
  queued.clear();
}
