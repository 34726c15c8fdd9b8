import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { configuredPython } from "../../config.js";
import {
  InstanceStartError,
  RuntimeUnavailableError,
  UnsupportedError,
  ValidationError,
} from "../../errors.js";
import { AUTH_TOKEN_VARIABLE, serverScriptPath } from "../../server/server-files.js";
import { instanceToken } from "../../transport/auth-token.js";
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
import type { EnvFolder } from "../env-folder.js";
import { readEnvFolder } from "../env-folder.js";
import type { InstanceKind, InstanceSpec } from "../instance-spec.js";
import { instanceKind } from "../instance-spec.js";
import { KEEP_ALIVE_SCRIPT } from "../keep-alive.js";
import { instanceLabels, kindOf } from "../labels.js";
import { networkHolderScript } from "../network-holder-script.js";
import { relativeToWorkdir } from "../process/sandbox-cwd.js";
import { createSandboxFolders, removeSandboxFolders, runsAsRoot } from "../process/sandbox-folder.js";
import type { SandboxPlan } from "../process/sandbox-plan.js";
import { planSandbox } from "../process/sandbox-plan.js";
import type { RecordFolder } from "../record-folder.js";
import type { PendingInstance, StartDriver } from "../start-sequence.js";
import { dockerJobScript, serverJobScript, shellJobScript, taskJobScript } from "./job-script.js";
import type { SlurmCommands } from "./slurm-cli.js";
import { nodeAddress, slurmCommand } from "./slurm-cli.js";
import type { SlurmRecord } from "./slurm-instance.js";
import { SlurmInstance, jobLogFile } from "./slurm-instance.js";
import { JobBoot } from "./job-boot.js";
import type { SlurmRuntimeOptions } from "./slurm-runtime.js";

const DEFAULT_START_TIMEOUT_MS = 300_000;

/** What a start checked and resolved before submitting anything. */
interface Prepared {
  kind: InstanceKind;
  /** The container's network plan (names resolved now), when the job holds a container. */
  network: NetworkPlan | undefined;
  /** A shell sandbox's plan: confinement, variables, network. */
  plan: SandboxPlan | undefined;
  /** A method server's environment folder. */
  folder: EnvFolder | undefined;
}

/**
 * The Slurm runtime's part of the start sequence: each instance is one job, submitted
 * from this machine, holding a method server, a shell sandbox or a task until it is
 * cancelled (or, a task, until it ends).
 */
export class SlurmStart implements StartDriver<Prepared> {
  readonly kind = "slurm" as const;
  readonly kinds = ["serve", "sandbox", "task"] as const;
  readonly startTimeoutMs = DEFAULT_START_TIMEOUT_MS;
  private readonly container: NonNullable<SlurmRuntimeOptions["container"]>;

  constructor(
    private readonly options: SlurmRuntimeOptions,
    private readonly commands: SlurmCommands,
    private readonly records: RecordFolder<SlurmRecord>,
  ) {
    this.container = options.container ?? "none";
  }

  newName(spec: InstanceSpec): string {
    return `${spec.envName}-${randomBytes(4).toString("hex")}`;
  }

  async prepare(spec: InstanceSpec): Promise<Prepared> {
    const kind = instanceKind(spec);
    const docker = this.container === "docker";
    if (kind === "serve" && !docker && !spec.envPath)
      throw new ValidationError(
        "envPath",
        "a method server on Slurm runs an environment folder: give envPath",
      );
    if (docker && !spec.image)
      throw new ValidationError("image", "a Docker container on Slurm needs an image");
    if (kind !== "sandbox" && !docker && this.container !== "none")
      throw new UnsupportedError(
        `${this.container} confines shell sandboxes (serve: false), not ${kind === "serve" ? "method servers" : "tasks"}`,
      );
    if (kind !== "sandbox" && !docker && spec.network !== undefined && spec.network !== "full")
      throw new UnsupportedError(
        `a ${kind === "serve" ? "method server" : "task"} on the node shares its network: a network policy other than "full" needs container: "docker" (shell sandboxes hold the others)`,
      );
    const allowlist = spec.network !== undefined && typeof spec.network === "object";
    if (kind === "task" && docker && allowlist)
      throw new UnsupportedError(
        'a task in a container on Slurm takes network "full" or "none", not an allowlist',
      );
    if (kind === "task" && !docker && spec.task?.command === undefined)
      throw new ValidationError("task.command", "a task on the node runs its command: give one");
    return {
      kind,
      // names resolve before anything is submitted
      network: docker ? await planNetwork(spec) : undefined,
      plan:
        kind === "sandbox" && !docker
          ? await planSandbox(spec, this.container === "none" ? "none" : this.container, this.options)
          : undefined,
      folder:
        kind === "serve" && !docker ? await readEnvFolder(spec.envPath as string, spec.envType) : undefined,
    };
  }

  async adopt(name: string, spec: InstanceSpec, prepared: Prepared): Promise<PendingInstance | undefined> {
    const existing = await this.records.read(name);
    if (!existing) return undefined;
    const adopted = new SlurmInstance(existing, true, this.commands, this.records, spec.envVars);
    const same =
      kindOf(existing.labels) === prepared.kind &&
      (existing.holds !== "docker" || samePolicy(planOf(existing.labels), spec.network));
    if (!spec.forceRecreate && same && (await adopted.isRunning()))
      return { boot: async () => adopted, failure: () => ended(adopted), discard: async () => {} };
    await adopted.stop();
    return undefined;
  }

  async create(name: string, spec: InstanceSpec, prepared: Prepared): Promise<PendingInstance> {
    const record = await this.newRecord(name, spec, prepared);
    const instance = new SlurmInstance(record, false, this.commands, this.records, spec.envVars);
    const boot = new JobBoot(this.commands, this.records, record, instance);
    return {
      boot: async (deadline) => {
        record.jobId = await this.submit(record, spec, this.jobScript(record, spec, prepared));
        await this.records.write(record); // from here on, cleanup and `afs gc` can find the job
        const node = await boot.running(deadline, prepared.kind === "task");
        // a running job has only begun `docker run`: commands need the container itself, behind its rules
        const rules = prepared.network !== undefined && !isSealed(prepared.network);
        if (record.holds === "docker" && (prepared.kind === "sandbox" || rules))
          await boot.container(deadline, rules);
        // a shell sandbox's job has made its network namespace on the node
        if (prepared.plan?.tools) await boot.network(prepared.plan, deadline);
        if (prepared.kind === "serve")
          record.endpoint = `http://${await nodeAddress(this.commands, node)}:${await boot.serverPort(deadline)}`;
        else if (spec.ports?.length) record.node = await nodeAddress(this.commands, node);
        await this.records.write(record);
        return instance;
      },
      failure: () => (prepared.kind === "task" ? Promise.resolve(undefined) : ended(instance)),
      discard: async () => {
        if (record.jobId) return instance.stop();
        await this.records.remove(name);
        await removeSandboxFolders(record.isolation?.folders.root);
      },
      // a node that cannot hold the rules said so in the job's log
      explain: async (err) => {
        const missing = prepared.network && record.jobId ? missingPrerequisite(await boot.log()) : undefined;
        return missing
          ? new RuntimeUnavailableError("slurm", `the node cannot hold a network policy: ${missing}`, {
              cause: err,
            })
          : err;
      },
    };
  }

  /** The record of a new instance, with its folders: what the job holds follows the spec and the runtime's container. */
  private async newRecord(name: string, spec: InstanceSpec, prepared: Prepared): Promise<SlurmRecord> {
    const { kind, network, plan, folder } = prepared;
    const docker = this.container === "docker";
    await mkdir(this.records.dir(name), { recursive: true });
    const record: SlurmRecord = {
      name,
      jobId: "",
      holds: docker ? "docker" : kind === "serve" ? "server" : "shell",
      envName: spec.envName,
      envType: folder?.envType ?? spec.envType ?? "function_based",
      startedAt: new Date().toISOString(),
      labels: { ...instanceLabels(spec), ...(network ? { [NETWORK_LABEL]: planLabel(network) } : {}) },
      ...(spec.image ? { image: spec.image } : {}),
      ...(docker ? { container: `affinetes-slurm-${name}` } : {}),
      ...(kind !== "serve" && !docker && spec.envVars ? { envVars: { ...spec.envVars } } : {}),
      ...(spec.ports?.length ? { ports: [...spec.ports] } : {}),
      authToken: kind === "serve" ? instanceToken(spec) : undefined,
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
        record.workdir = spec.workdir ?? join(this.records.dir(name), "work");
        await mkdir(record.workdir, { recursive: true });
      } else if (spec.workdir) {
        record.workdir = spec.workdir;
      }
    } catch (err) {
      await this.records.remove(name);
      throw err;
    }
    return record;
  }

  private jobScript(record: SlurmRecord, spec: InstanceSpec, prepared: Prepared): string {
    const { kind, plan, folder, network } = prepared;
    if (record.holds === "docker") {
      return dockerJobScript({
        container: record.container as string,
        image: record.image as string,
        serves: kind === "serve",
        ...(spec.task ? { task: spec.task } : {}),
        workdir: spec.workdir,
        envKeys: [...Object.keys(spec.envVars ?? {}), ...(record.authToken ? [AUTH_TOKEN_VARIABLE] : [])],
        cpus: spec.cpus,
        memoryBytes: spec.memoryBytes,
        labels: { "affinetes.slurm.instance": record.name },
        network,
      });
    }
    if (kind === "task") return taskJobScript(spec.task?.command as string, spec.envVars ?? {});
    if (kind === "sandbox") {
      // made inside the job, on the node: the sandbox's own network namespace
      return plan?.tools
        ? networkHolderScript({
            tools: plan.tools,
            policy: plan.policy,
            rootless: !runsAsRoot(),
            dir: this.records.dir(record.name),
            idle: KEEP_ALIVE_SCRIPT,
            tag: `"slurm-$SLURM_JOB_ID"`,
          })
        : shellJobScript();
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
      `--output=${jobLogFile(this.records, record.name)}`,
      `--comment=affinetes:${record.name}`,
      // a confined sandbox's job runs outside its folders (owned by the sandbox's user)
      `--chdir=${record.isolation || !record.workdir || record.holds === "docker" ? this.records.dir(record.name) : record.workdir}`,
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
}

async function ended(instance: SlurmInstance): Promise<string | undefined> {
  return (await instance.isRunning()) ? undefined : "its Slurm job ended";
}
