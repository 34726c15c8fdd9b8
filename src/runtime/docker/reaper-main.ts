/**
 * Entry point of the exit-time reaper: reads a `ReapRequest` on stdin and removes the
 * containers it names. Run by `reapContainersSync`, never imported.
 */
import { readFileSync } from "node:fs";
import { openEngine } from "./docker-connection.js";
import { removeContainer } from "./docker-instance.js";
import type { ReapRequest } from "./reap-containers.js";

const request = JSON.parse(readFileSync(0, "utf8")) as ReapRequest;
const engine = openEngine(request.connection);
const docker = engine.docker;
const results = await Promise.allSettled(request.ids.map((id) => removeContainer(docker, id)));
for (const result of results) {
  if (result.status === "rejected") process.stderr.write(`affinetes reaper: ${String(result.reason)}\n`);
}
engine.release();
process.exit(0); // an SSH connection must not keep the reaper alive
