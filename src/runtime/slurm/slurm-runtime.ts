import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { configuredPython } from "../../config.js";
import {
  AbortedError,
  InstanceStartError,
  RuntimeUnavailableError,
  UnsupportedError,
  ValidationError,
} from "../../errors.js";
import { readEnvFolder } from "../../image/env-folder.js";
import type { EnvFolder } from "../../image/env-folder.js";
import { AUTH_TOKEN_VARIABLE, serverScriptPath } from "../../server/server-files.js";
import { instanceToken } from "../../transport/auth-token.js";
import type { OperationOptions } from "../../util/deadline.js";
import { Deadline } from "../../util/deadline.js";
import { validateInstanceName } from "../instance-name.js";
import type { Instance, InstanceInfo, InstanceSpec } from "../instance.js";
import { LABELS, ownerIsDead, ownerLabels } from "../labels.js";
import { KEEP_ALIVE_SCRIPT } from "../keep-alive.js";
import { networkHolderScript } from "../network-holder-script.js";
import type { IsolationKind } from "../process/isolation.js";
import { relativeToWorkdir } from "../process/sandbox-cwd.js";
import { createSandboxFolders, removeSandboxFolders, runsAsRoot } from "../process/sandbox-folder.js";
import type { SandboxPlan } from "../process/sandbox-plan.js";
import { planSandbox } from "../process/sandbox-plan.js";
import type { NetworkTools } from "../sandbox-network.js";
import { waitForNetwork } from "../wait-for-network.js";
import { RecordFolder } from "../record-folder.js";
import type { Runtime } from "../runtime.js";
import { readinessClient, waitForReady } from "../wait-for-ready.js";
import {
  CONTAINER_SERVER_PORT,
  dockerJobScript,
  networkReadyFilePath,
  portFilePath,
  serverJobScript,
  shellJobScript,
} from "./job-script.js";
import type { NetworkPlan } from "../docker/network-plan.js";
import {
  NETWORK_LABEL,
  isSealed,
  planLabel,
  planNetwork,
  planOf,
  samePolicy,
} from "../docker/network-plan.js";
import { missingPrerequisite } from "../docker/netns-rules-script.js";
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
  /** The isolation tool's binary (default its usual name); the nodes have it at the same path. */
  isolationBinary?: string;
  /** Folders whose subfolders may be given as a confined sandbox's image folder (see `ProcessRuntimeOptions`). */
  imageRoots?: readonly string[];
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
    // names resolve before anything is submitted
    const network = this.container === "docker" ? await deadline.run(() => planNetwork(spec)) : undefined;
    const existing = await records.read(name);
    if (existing) {
      const adopted = new SlurmInstance(existing, true, this.commands, records, spec.envVars);
      const same = existing.holds !== "docker" || samePolicy(planOf(existing.labels), spec.network);
      if (spec.reuse !== false && !spec.forceRecreate && same && (await adopted.isRunning())) return adopted;
      await adopted.stop();
    }
    const { record, folder, plan } = await this.prepareRecord(name, spec, network);
    const instance = new SlurmInstance(record, false, this.commands, records, spec.envVars);
    try {
      const script = this.jobScript(record, spec, folder, network, plan);
      record.jobId = await this.submit(record, spec, script);
      await records.write(record); // from here on, cleanup and `afs gc` can find the job
      const node = await this.waitRunning(record, deadline);
      // a running job has only begun `docker run`: commands need the container itself, behind its rules
      const rules = network !== undefined && !isSealed(network);
      if (record.holds === "docker" && (spec.serve === false || rules))
        await this.waitContainer(record, deadline, rules);
      // a shell sandbox's job has made its network namespace on the node
      if (plan?.tools) await this.waitNetwork(instance, record, plan, deadline);
      if (spec.serve !== false) {
        record.endpoint = `http://${await nodeAddress(this.commands, node)}:${await this.serverPort(record, deadline)}`;
        await records.write(record);
        await this.waitServing(instance, record, deadline);
      }
      return instance;
    } catch (err) {
      // a node that cannot hold the rules said so in the job's log
      const missing = network && record.jobId ? missingPrerequisite(await this.log(record)) : undefined;
      if (record.jobId) await instance.stop();
      else {
        await records.remove(name);
        await removeSandboxFolders(record.isolation?.folders.root);
      }
      if (missing)
        throw new RuntimeUnavailableError("slurm", `the node cannot hold a network policy: ${missing}`, {
          cause: err,
        });
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

  /**
   * The record of a new instance, with its folder; what the job holds follows the spec and
   * the runtime's container. A shell sandbox is planned (confinement, variables, network)
   * before anything is made.
   */
  private async prepareRecord(
    name: string,
    spec: InstanceSpec,
    network: NetworkPlan | undefined,
  ): Promise<{ record: SlurmRecord; folder: EnvFolder | undefined; plan: SandboxPlan | undefined }> {
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
    if (serves && !docker && spec.network !== undefined && spec.network !== "full")
      throw new UnsupportedError(
        'a method server on the node shares its network: a network policy other than "full" needs container: "docker" (shell sandboxes hold the others)',
      );
    const shell = !serves && !docker;
    const plan = shell
      ? await planSandbox(spec, this.container === "none" ? "none" : this.container, this.options)
      : undefined;
    const folder = serves && !docker ? await readEnvFolder(spec.envPath as string, spec.envType) : undefined;
    await mkdir(records.dir(name), { recursive: true });
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
        ...(network ? { [NETWORK_LABEL]: planLabel(network) } : {}),
      },
      ...(spec.image ? { image: spec.image } : {}),
      ...(docker ? { container: `affinetes-slurm-${name}` } : {}),
      ...(shell && spec.envVars ? { envVars: { ...spec.envVars } } : {}),
      authToken: serves ? instanceToken(spec) : undefined,
    };
    try {
      if (plan?.isolation) {
        // the node must see them: one machine, or AFFINETES_SANDBOX_DIR on a shared file system
        const folders = await createSandboxFolders(
          name,
          relativeToWorkdir(plan.isolation.cwd),
          plan.policy.kind !== "none",
        );
        record.isolation = { ...plan.isolation, folders };
        record.workdir = folders.workdir;
      } else if (!docker) {
        record.workdir = spec.workdir ?? join(records.dir(name), "work");
        await mkdir(record.workdir, { recursive: true });
      } else if (spec.workdir) {
        record.workdir = spec.workdir;
      }
    } catch (err) {
      await records.remove(name);
      throw err;
    }
    return { record, folder, plan };
  }

  private jobScript(
    record: SlurmRecord,
    spec: InstanceSpec,
    folder: EnvFolder | undefined,
    network: NetworkPlan | undefined,
    plan: SandboxPlan | undefined,
  ): string {
    if (record.holds === "shell") {
      // made inside the job, on the node: the sandbox's own network namespace
      return plan?.tools
        ? networkHolderScript({
            tools: plan.tools,
            policy: plan.policy,
            rootless: !runsAsRoot(),
            dir: records.dir(record.name),
            idle: KEEP_ALIVE_SCRIPT,
            tag: `"slurm-$SLURM_JOB_ID"`,
          })
        : shellJobScript();
    }
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
        network,
      });
    }
    if (!folder) throw new ValidationError("envPath", "a method server on Slurm runs an environment folder");
    return serverJobScript({
      python: this.options.python ?? configuredPython(),
      serverScript: serverScriptPath(),
      envFile: folder.envFile,
      envType: folder.envType,
      envVars: spec.envVars ?? {},
    });
  }

  /** `sbatch --parsable`, the script on stdin; returns the job id. */
  private async submit(record: SlurmRecord, spec: InstanceSpec, script: string): Promise<string> {
    const args = [
      "--parsable",
      `--job-name=${record.name}`,
      `--output=${jobLogFile(records, record.name)}`,
      `--comment=affinetes:${record.name}`,
      // a confined sandbox's job runs outside its folders (owned by the sandbox's user)
      `--chdir=${record.isolation || !record.workdir || record.holds === "docker" ? records.dir(record.name) : record.workdir}`,
      ...(spec.cpus ? [`--cpus-per-task=${Math.ceil(spec.cpus)}`] : []),
      ...(spec.memoryBytes ? [`--mem=${Math.ceil(spec.memoryBytes / 2 ** 20)}M`] : []),
      ...(this.options.sbatchArgs ?? []),
      ...(spec.schedulerArgs ?? []),
    ];
    // The job's environment is the submitter's (sbatch --export=ALL). The instance's variables
    // never apply to sbatch itself (an LD_PRELOAD would run on this machine): a shell sandbox's
    // go in with each command, a server's are in its script; a Docker job reads them here.
    // The token goes into the job's environment, never into the script (`scontrol` shows scripts).
    const env: NodeJS.ProcessEnv =
      record.holds === "docker" ? { ...process.env, ...spec.envVars } : { ...process.env };
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

  /** Waits until the job has made the sandbox's network namespace on its node; records its pid. */
  private async waitNetwork(
    instance: SlurmInstance,
    record: SlurmRecord,
    plan: SandboxPlan,
    deadline: Deadline,
  ): Promise<void> {
    const tools = plan.tools as NetworkTools;
    const pid = await waitForNetwork({
      instance: record.name,
      dir: records.dir(record.name),
      deadline,
      running: () => instance.isRunning(),
      logs: () => instance.logs({ tail: 20 }),
    });
    record.network = { policy: plan.policy.kind, pid, rootless: !runsAsRoot(), nsenter: tools.nsenter };
    await records.write(record);
  }

  /**
   * Waits until the job's container runs (checked on its node through a job step) and,
   * with `rules`, until the job has set its network rules.
   */
  private async waitContainer(record: SlurmRecord, deadline: Deadline, rules = false): Promise<void> {
    const inspect = ["docker", "inspect", "--format", "{{.State.Running}}", record.container as string];
    const check = rules
      ? ["sh", "-c", `test -f ${networkReadyFilePath(record.jobId)} && exec "$@"`, "sh", ...inspect]
      : inspect;
    for (;;) {
      const out = await slurmCommand(
        this.commands.srun,
        [`--jobid=${record.jobId}`, "--overlap", "--quiet", ...check],
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
