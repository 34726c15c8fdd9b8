import { ValidationError } from "../errors.js";
import type { ExecResult } from "../runtime/instance.js";
import type { RunOptions, Workspace } from "./deploy.js";
import { runInProject } from "./deploy.js";
import type { Host } from "../host/host.js";

/** Options of `runOnHosts`. */
export interface MultiNodeOptions extends Omit<RunOptions, "onOutput"> {
  command: string;
  /** Where to run on each host, by rank: a workspace from `deployProject` or a path (default the home folder). */
  workspaces?: ReadonlyArray<Workspace | string>;
  /** `MASTER_PORT` (default 29500). */
  masterPort?: number;
  /** Receives each rank's output as it is written. */
  onOutput?: (rank: number, chunk: string, stream: "stdout" | "stderr") => void;
}

/** One rank's outcome. */
export interface RankResult extends ExecResult {
  rank: number;
  host: string;
}

/**
 * Runs the same command on N hosts at once, as one distributed job: each gets `RANK`
 * (its index), `WORLD_SIZE` (N), `MASTER_ADDR` (the first host's address) and
 * `MASTER_PORT`, the variables torch.distributed and most launchers read. Resolves when
 * every rank has ended, in rank order; with `check`, rejects with the first failing
 * rank's `CommandError`.
 */
export async function runOnHosts(hosts: readonly Host[], options: MultiNodeOptions): Promise<RankResult[]> {
  if (hosts.length === 0) throw new ValidationError("hosts", "give at least one host");
  if (options.workspaces && options.workspaces.length !== hosts.length)
    throw new ValidationError("workspaces", `give one per host (${hosts.length}), in rank order`);
  const port = options.masterPort ?? 29500;
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new ValidationError("masterPort", "must be a TCP port (1-65535)");
  const master = hosts[0] as Host;
  return Promise.all(
    hosts.map(async (host, rank) => {
      const env = {
        ...options.env,
        RANK: String(rank),
        LOCAL_RANK: "0",
        WORLD_SIZE: String(hosts.length),
        MASTER_ADDR: master.hostname,
        MASTER_PORT: String(port),
      };
      const { onOutput, workspaces, masterPort: _port, ...run } = options;
      const result = await runInProject(host, workspaces?.[rank] ?? "~", options.command, {
        ...run,
        env,
        ...(onOutput ? { onOutput: (chunk, stream) => onOutput(rank, chunk, stream) } : {}),
      });
      return { ...result, rank, host: host.label };
    }),
  );
}
