import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { configuredPython } from "../../config.js";
import { AbortedError, InstanceStartError, UnsupportedError, ValidationError } from "../../errors.js";
import { readEnvFolder } from "../../image/env-folder.js";
import type { EnvFolder } from "../../image/env-folder.js";
import { AUTH_TOKEN_VARIABLE, serverScriptPath } from "../../server/server-files.js";
import { instanceToken } from "../../transport/auth-token.js";
import type { OperationOptions } from "../../util/deadline.js";
import { Deadline } from "../../util/deadline.js";
import { validateInstanceName } from "../instance-name.js";
import type { Instance, InstanceInfo, InstanceSpec } from "../instance.js";
import { LABELS, ownerIsDead, ownerLabels } from "../labels.js";
import type { IsolationKind } from "../process/isolation.js";
import { checkIsolation, isolationBinary } from "../process/isolation.js";
import { RecordFolder } from "../record-folder.js";
import type { Runtime } from "../runtime.js";
import { readinessClient, waitForReady } from "../wait-for-ready.js";
import {
  CONTAINER_SERVER_PORT,
  dockerJobScript,
  portFilePath,
  serverJobScript,
  shellJobScript,
} from "./job-script.js";
import type { SlurmCommands } from "./slurm-cli.js";
import {
  DEFAULT_SLURM_COMMANDS,
  isActive,
  jobState,
  jobStates,
  nodeAddress,
  slurmCommand,
} from "./slurm-cli.js";
import type { SlurmRecord } from "./slurm-instance.js";
import { SlurmInstance, describe, jobLogFile } from "./slurm-instance.js";

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
}

const DEFAULT_START_TIMEOUT_MS = 300_000;
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
  private readonly commands: SlurmCommands;
  private readonly container: NonNullable<SlurmRuntimeOptions["container"]>;

  constructor(private readonly options: SlurmRuntimeOptions = {}) {
    this.commands = { ...DEFAULT_SLURM_COMMANDS, ...options.commands };
    this.container = options.container ?? "none";
  }

  /** Checks that the controller answers (`squeue`), failing with `RuntimeUnavailableError`. */
  async ping(): Promise<void> {
    await slurmCommand(this.commands.squeue, ["--me", "-h", "-o", "%i"], { timeoutMs: 10_000 });
  }

  /** Whether any instance was submitted from this machine (and not yet removed): no Slurm call. */
  async hasInstances(): Promise<boolean> {
    return (await records.list()).length > 0;
  }

  async start(spec: InstanceSpec, options: OperationOptions = {}): Promise<Instance> {
    if (spec.name !== undefined) validateInstanceName(spec.name);
    const name = spec.name ?? `${spec.envName}-${randomBytes(4).toString("hex")}`;
    const deadline = new Deadline(`starting ${name} on Slurm`, {
      timeoutMs: options.timeoutMs ?? DEFAULT_START_TIMEOUT_MS,
      signal: options.signal,
    });
    const existing = await records.read(name);
    if (existing) {
      const adopted = new SlurmInstance(existing, true, this.commands, records, spec.envVars);
      if (spec.reuse !== false && !spec.forceRecreate && (await adopted.isRunning())) return adopted;
      await adopted.stop();
    }
    const { record, folder } = await this.prepareRecord(name, spec);
    const script = this.jobScript(record, spec, folder);
    const instance = new SlurmInstance(record, false, this.commands, records, spec.envVars);
    try {
      record.jobId = await this.submit(record, spec, script);
      await records.write(record); // from here on, cleanup and `afs gc` can find the job
      const node = await this.waitRunning(record, deadline);
      // a running job has only begun `docker run`: commands need the container itself
      if (record.holds === "docker" && spec.serve === false) await this.waitContainer(record, deadline);
      if (spec.serve !== false) {
        record.endpoint = `http://${await nodeAddress(this.commands, node)}:${await this.serverPort(record, deadline)}`;
        await records.write(record);
        await this.waitServing(instance, record, deadline);
      }
      return instance;
    } catch (err) {
      if (record.jobId) await instance.stop();
      else await records.remove(name);
      throw err;
    }
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
      .map((r) => new SlurmInstance(r, true, this.commands, records));
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

  /** The record of a new instance, with its folder; what the job holds follows the spec and the runtime's container. */
  private async prepareRecord(
    name: string,
    spec: InstanceSpec,
  ): Promise<{ record: SlurmRecord; folder: EnvFolder | undefined }> {
    const serves = spec.serve !== false;
    const docker = this.container === "docker";
    if (serves && !docker && !spec.envPath)
      throw new ValidationError(
        "envPath",
        "a method server on Slurm runs an environment folder: give envPath",
      );
    if (docker && !spec.image)
      throw new ValidationError("image", "a Docker container on Slurm needs an image");
    if (serves && !docker && this.container !== "none")
      throw new UnsupportedError(
        `${this.container} confines shell sandboxes (serve: false), not method servers`,
      );
    const folder = serves && !docker ? await readEnvFolder(spec.envPath as string, spec.envType) : undefined;
    await mkdir(records.dir(name), { recursive: true });
    const workdir = spec.workdir ?? (docker ? undefined : join(records.dir(name), "work"));
    if (workdir && !docker) await mkdir(workdir, { recursive: true });
    const record: SlurmRecord = {
      name,
      jobId: "",
      holds: docker ? "docker" : serves ? "server" : "shell",
      envName: spec.envName,
      envType: folder?.envType ?? spec.envType ?? "function_based",
      startedAt: new Date().toISOString(),
      labels: {
        ...spec.labels,
        [LABELS.managed]: "true",
        [LABELS.envName]: spec.envName,
        [LABELS.keep]: String(spec.keep ?? false),
        [LABELS.serve]: String(serves),
        ...ownerLabels(),
      },
      ...(workdir ? { workdir } : {}),
      ...(spec.image ? { image: spec.image } : {}),
      ...(docker ? { container: `affinetes-slurm-${name}` } : {}),
      authToken: serves ? instanceToken(spec) : undefined,
    };
    if (this.container !== "none" && this.container !== "docker" && workdir) {
      const binary = isolationBinary(this.container);
      const image = checkIsolation(this.container, binary, spec.image);
      const tmp = join(records.dir(name), "tmp");
      await mkdir(tmp, { recursive: true });
      record.isolation = { kind: this.container, binary, image, workdir, tmp };
    }
    return { record, folder };
  }

  private jobScript(record: SlurmRecord, spec: InstanceSpec, folder: EnvFolder | undefined): string {
    if (record.holds === "shell") return shellJobScript();
    if (record.holds === "docker") {
      return dockerJobScript({
        container: record.container as string,
        image: record.image as string,
        serves: spec.serve !== false,
        workdir: spec.workdir,
        envKeys: [...Object.keys(spec.envVars ?? {}), ...(record.authToken ? [AUTH_TOKEN_VARIABLE] : [])],
        cpus: spec.cpus,
        memoryBytes: spec.memoryBytes,
        labels: { "affinetes.slurm.instance": record.name },
      });
    }
    if (!folder) throw new ValidationError("envPath", "a method server on Slurm runs an environment folder");
    return serverJobScript({
      python: this.options.python ?? configuredPython(),
      serverScript: serverScriptPath(),
      envFile: folder.envFile,
      envType: folder.envType,
    });
  }

  /** `sbatch --parsable`, the script on stdin; returns the job id. */
  private async submit(record: SlurmRecord, spec: InstanceSpec, script: string): Promise<string> {
    const args = [
      "--parsable",
      `--job-name=${record.name}`,
      `--output=${jobLogFile(records, record.name)}`,
      `--comment=affinetes:${record.name}`,
      ...(record.workdir && record.holds !== "docker" ? [`--chdir=${record.workdir}`] : []),
      ...(spec.cpus ? [`--cpus-per-task=${Math.ceil(spec.cpus)}`] : []),
      ...(spec.memoryBytes ? [`--mem=${Math.ceil(spec.memoryBytes / 2 ** 20)}M`] : []),
      ...(this.options.sbatchArgs ?? []),
      ...(spec.schedulerArgs ?? []),
    ];
    // The job's environment is the submitter's (sbatch --export=ALL), with the instance's
    // variables; the token goes there too, never into the script (`scontrol` shows scripts).
    const env: NodeJS.ProcessEnv = { ...process.env, ...spec.envVars };
    if (record.authToken) env[AUTH_TOKEN_VARIABLE] = record.authToken;
    else delete env[AUTH_TOKEN_VARIABLE];
    const out = await slurmCommand(this.commands.sbatch, args, { input: script, env });
    const jobId = out.trim().split(";")[0] ?? "";
    if (!/^\d+$/.test(jobId)) throw new InstanceStartError(record.name, `sbatch printed no job id: ${out}`);
    return jobId;
  }

  /** Waits for the job to run; returns its node. A job that ends or stays pending is an error naming why. */
  private async waitRunning(record: SlurmRecord, deadline: Deadline): Promise<string> {
    let state = await jobState(this.commands, record.jobId);
    for (let interval = 20; ; interval = Math.min(250, interval * 2)) {
      if (state?.state === "RUNNING" && state.node) return state.node;
      if (!state || !isActive(state.state)) {
        throw new InstanceStartError(
          record.name,
          `it exited before running: Slurm job ${record.jobId} ${describe(state)}`,
          await this.log(record),
        );
      }
      if (deadline.fired)
        throw this.startTimeout(record, deadline, `Slurm job ${record.jobId} ${describe(state)}`);
      await deadline.sleep(interval).catch(() => undefined);
      state = await jobState(this.commands, record.jobId);
    }
  }

  /** Waits until the job's container runs (checked on its node through a job step). */
  private async waitContainer(record: SlurmRecord, deadline: Deadline): Promise<void> {
    for (;;) {
      const out = await slurmCommand(
        this.commands.srun,
        [
          `--jobid=${record.jobId}`,
          "--overlap",
          "--quiet",
          "docker",
          "inspect",
          "--format",
          "{{.State.Running}}",
          record.container as string,
        ],
        { timeoutMs: 30_000 },
      ).catch(() => "");
      if (out.trim() === "true") return;
      const state = await jobState(this.commands, record.jobId);
      if (state?.state !== "RUNNING") {
        throw new InstanceStartError(
          record.name,
          `the container did not start: its Slurm job ${describe(state)}`,
          await this.log(record),
        );
      }
      if (deadline.fired) throw this.startTimeout(record, deadline, "the container did not start in time");
      await deadline.sleep(50).catch(() => undefined);
    }
  }

  /** The port the job's server listens on, read on its node through a job step. */
  private async serverPort(record: SlurmRecord, deadline: Deadline): Promise<number> {
    const read =
      record.holds === "docker"
        ? ["docker", "port", record.container as string, `${CONTAINER_SERVER_PORT}/tcp`]
        : ["cat", portFilePath(record.jobId)];
    for (;;) {
      const out = await slurmCommand(
        this.commands.srun,
        [`--jobid=${record.jobId}`, "--overlap", "--quiet", ...read],
        { timeoutMs: 30_000 },
      ).catch(() => "");
      const port = Number(/(\d+)\s*$/m.exec(out.split("\n")[0] ?? "")?.[1]);
      if (Number.isInteger(port) && port > 0) return port;
      const state = await jobState(this.commands, record.jobId);
      if (state?.state !== "RUNNING") {
        throw new InstanceStartError(
          record.name,
          `the server exited: its Slurm job ${describe(state)}`,
          await this.log(record),
        );
      }
      if (deadline.fired) throw this.startTimeout(record, deadline, "the server did not listen in time");
      await deadline.sleep(50).catch(() => undefined);
    }
  }

  private async waitServing(instance: SlurmInstance, record: SlurmRecord, deadline: Deadline): Promise<void> {
    const http = readinessClient(instance.endpoint(), instance.authToken);
    try {
      await waitForReady({
        instance: record.name,
        http,
        envType: record.envType,
        deadline,
        failure: async () => ((await instance.isRunning()) ? undefined : "its Slurm job ended"),
        logs: () => instance.logs({ tail: 50 }),
      });
    } finally {
      await http.close();
    }
  }

  private startTimeout(record: SlurmRecord, deadline: Deadline, why: string): Error {
    const cause = deadline.error();
    if (cause instanceof AbortedError) return cause;
    return new InstanceStartError(record.name, why, undefined, { cause });
  }

  private log(record: SlurmRecord): Promise<string> {
    return new SlurmInstance(record, false, this.commands, records).logs({ tail: 50 });
  }
}
