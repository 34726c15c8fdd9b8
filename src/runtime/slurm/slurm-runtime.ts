import type { OperationOptions } from "../../util/deadline.js";
import type { Instance, InstanceInfo, InstanceOf } from "../instance.js";
import { asInstance } from "../instance.js";
import type { InstanceSpec } from "../instance-spec.js";
import { LABELS, ownerIsDead } from "../labels.js";
import type { IsolationKind } from "../process/isolation.js";
import { RecordFolder } from "../record-folder.js";
import type { Runtime } from "../runtime.js";
import { startInstance } from "../start-sequence.js";
import type { SlurmCommands } from "./slurm-cli.js";
import { DEFAULT_SLURM_COMMANDS, isActive, jobStates, slurmCommand } from "./slurm-cli.js";
import type { SlurmRecord } from "./slurm-instance.js";
import { SlurmInstance } from "./slurm-instance.js";
import { SlurmStart } from "./slurm-start.js";

export interface SlurmRuntimeOptions {
  /**
   * What a job holds besides a plain process: `none` (default: a shell sandbox or an
   * environment folder's method server, on the node), `docker` (the `image` in a Docker
   * container on the node), or an isolation tool confining a shell sandbox's commands
   * (`bubblewrap`, `apptainer`, `singularity`, `enroot`).
   */
  container?: "none" | "docker" | Exclude<IsolationKind, "none">;
  /** `sbatch` arguments for every job, before the instance's own (`--partition=debug`, `--time=2:00:00`). */
  sbatchArgs?: readonly string[];
  /** Python on the nodes, for environment folders; default `AFFINETES_PYTHON` or `python3`. */
  python?: string;
  /** The Slurm client commands (default from the PATH). */
  commands?: Partial<SlurmCommands>;
  /** The isolation tool's binary (default its usual name); the nodes have it at the same path. */
  isolationBinary?: string;
  /** Folders whose subfolders may be given as a confined sandbox's image folder (see `ProcessRuntimeOptions`). */
  imageRoots?: readonly string[];
}

const records = new RecordFolder<SlurmRecord>("slurm");

/**
 * Runs instances as Slurm jobs, submitted from this machine (a login node): each job
 * holds one instance, a method server or a shell sandbox, until it is cancelled. Commands
 * run as job steps (`srun --jobid --overlap`), method servers are reached at their node.
 * The nodes must see environment folders and affinetes' server script (a shared file
 * system); Docker images must be present on the nodes.
 */
export class SlurmRuntime implements Runtime {
  readonly kind = "slurm" as const;
  readonly host = "slurm";
  /** Images must be present on the nodes: nothing here builds or ships them. */
  readonly images = undefined;
  private readonly commands: SlurmCommands;

  constructor(private readonly options: SlurmRuntimeOptions = {}) {
    this.commands = { ...DEFAULT_SLURM_COMMANDS, ...options.commands };
  }

  /** Checks that the controller answers (`squeue`), failing with `RuntimeUnavailableError`. */
  async ping(timeoutMs = 10_000): Promise<void> {
    await slurmCommand(this.commands.squeue, ["--me", "-h", "-o", "%i"], { timeoutMs });
  }

  /** Whether any instance was submitted from this machine (and not yet removed): no Slurm call. */
  async hasInstances(): Promise<boolean> {
    return (await records.list()).length > 0;
  }

  start<S extends InstanceSpec>(spec: S, options: OperationOptions = {}): Promise<InstanceOf<S>> {
    return startInstance(new SlurmStart(this.options, this.commands, records), spec, options);
  }

  /** The instance of this name (or `slurm-<job id>` id), in any state; undefined when there is none. */
  async attach(idOrName: string): Promise<Instance | undefined> {
    const record =
      (await records.read(idOrName)) ?? (await records.list()).find((r) => `slurm-${r.jobId}` === idOrName);
    return record ? asInstance(new SlurmInstance(record, true, this.commands, records)) : undefined;
  }

  async list(): Promise<InstanceInfo[]> {
    const all = await records.list();
    if (all.length === 0) return []; // no Slurm call when there is nothing of ours
    const states = await jobStates(this.commands);
    return all.map((r) => ({
      id: `slurm-${r.jobId}`,
      name: r.name,
      pool: r.labels[LABELS.pool] ?? r.name,
      host: r.endpoint ? new URL(r.endpoint).hostname : "slurm",
      runtime: "slurm",
      envName: r.envName,
      image: r.image ?? "",
      state: states.get(r.jobId) === "RUNNING" ? "running" : "stopped",
      endpoint: r.endpoint,
      createdAt: new Date(r.startedAt),
      keep: r.labels[LABELS.keep] === "true",
    }));
  }

  async find(pool: string): Promise<Instance[]> {
    const mine = (await records.list()).filter((r) => (r.labels[LABELS.pool] ?? r.name) === pool);
    if (mine.length === 0) return [];
    const states = await jobStates(this.commands);
    return mine
      .filter((r) => states.get(r.jobId) === "RUNNING")
      .sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }))
      .map((r) => asInstance(new SlurmInstance(r, true, this.commands, records)));
  }

  async removeAll(pool?: string): Promise<string[]> {
    const mine = (await records.list()).filter(
      (r) => pool === undefined || (r.labels[LABELS.pool] ?? r.name) === pool,
    );
    await Promise.all(mine.map((r) => new SlurmInstance(r, false, this.commands, records).stop()));
    return mine.map((r) => r.name);
  }

  async garbageCollect(): Promise<string[]> {
    const all = await records.list();
    if (all.length === 0) return [];
    const states = await jobStates(this.commands);
    const dead = all.filter((r) => {
      const state = states.get(r.jobId);
      return state === undefined || !isActive(state) || ownerIsDead(r.labels);
    });
    await Promise.all(dead.map((r) => new SlurmInstance(r, false, this.commands, records).stop()));
    return dead.map((r) => r.name);
  }

  async close(): Promise<void> {}
}
