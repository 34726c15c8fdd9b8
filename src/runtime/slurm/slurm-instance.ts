import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AbortedError, InstanceGoneError, ValidationError } from "../../errors.js";
import { runLocal } from "../../host/local-command.js";
import { followFile } from "../../util/follow-file.js";
import { KILL_WAIT_MS } from "../../util/command-end.js";
import { timerDelay } from "../../util/deadline.js";
import { shellQuote } from "../../util/shell-quote.js";
import {
  COMMAND_TAG_VARIABLE,
  INSTANCE_TAG_VARIABLE,
  KILL_TAGGED_SCRIPT,
} from "../../util/tagged-processes.js";
import { tailLines } from "../../util/tail-lines.js";
import type { ExecOptions, ExecResult, InstanceEvent, RuntimeInstance } from "../instance.js";
import { noServer } from "../instance.js";
import type { EnvType, InstanceKind } from "../instance-spec.js";
import { LABELS, kindOf } from "../labels.js";
import type { RecordFolder } from "../record-folder.js";
import type { Isolation } from "../process/isolation.js";
import { SANDBOX_WORKDIR, sandboxCwd } from "../process/sandbox-cwd.js";
import { sandboxVariables, validateSandboxEnv } from "../process/sandbox-env.js";
import { removeSandboxFolders } from "../process/sandbox-folder.js";
import { confinedLauncher } from "../process/sandbox-launcher.js";
import type { SandboxNetwork } from "../sandbox-network.js";
import { enterNetworkArgs } from "../sandbox-network.js";
import { systemTool } from "../system-tool.js";
import type { JobState, SlurmCommands } from "./slurm-cli.js";
import { isActive, jobState, slurmCommand } from "./slurm-cli.js";

/** What the slurm runtime records about an instance (one Slurm job). */
export interface SlurmRecord {
  name: string;
  jobId: string;
  /** What the job holds: a shell on the node, a method server process, or a Docker container. */
  holds: "shell" | "server" | "docker";
  /** The container's name, when the job holds one. */
  container?: string;
  /** How a shell sandbox's commands are confined on the node. */
  isolation?: Isolation;
  /** A shell sandbox's own network namespace, made by the job on its node. */
  network?: SandboxNetwork;
  /** A shell sandbox's variables, for every command, also after adoption by another client. */
  envVars?: Record<string, string>;
  envName: string;
  envType: EnvType;
  /** The sandbox's working folder (commands start there). */
  workdir?: string;
  /** `http://node-address:port` of a method server. */
  endpoint?: string;
  /** A task's or sandbox's `spec.ports`, reached at `node`. */
  ports?: number[];
  /** The address of the node a task or sandbox with ports runs on. */
  node?: string;
  /** The token its method server requires; the record is written 0600, readable by its owner only. */
  authToken?: string;
  image?: string;
  startedAt: string;
  labels: Record<string, string>;
}

/** The job's output (the server's log, the container's output), as `sbatch --output` wrote it. */
export function jobLogFile(records: RecordFolder<SlurmRecord>, name: string): string {
  return join(records.dir(name), "job.log");
}

/**
 * srun's own reports of how a step's task ended ("srun: error: node: task 0: Exited with
 * exit code 3"): the exit code says it already; they are not the command's output.
 */
const SRUN_TASK_REPORT =
  /^srun: (error: \S+: tasks? [\d,-]+: (Exited with exit code \d+|Killed|Terminated)|Job step aborted.*|Force Terminated.*|launch\/slurm: _step_signal: .*)\n/gm;

const WATCH_INTERVAL_MS = 2_000;
/** How often `wait` asks Slurm whether a task ended. */
const WAIT_INTERVAL_MS = 200;
/** How long past a command's timeout the node's own `timeout` ends it, should this process not. */
const NODE_BACKSTOP_S = 5;
const STOP_WAIT_MS = 30_000;

/** An instance held by a Slurm job: commands run as job steps (`srun --jobid --overlap`). */
export class SlurmInstance implements RuntimeInstance {
  readonly runtime = "slurm" as const;
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly record: SlurmRecord,
    readonly reused: boolean,
    private readonly commands: SlurmCommands,
    private readonly records: RecordFolder<SlurmRecord>,
    envVars: Readonly<Record<string, string>> = {},
  ) {
    // the recorded variables first: an adopting client (a restarted service) knows none
    this.envVars = { ...record.envVars, ...envVars };
  }

  private readonly envVars: Readonly<Record<string, string>>;

  get id(): string {
    return `slurm-${this.record.jobId}`;
  }

  get name(): string {
    return this.record.name;
  }

  get jobId(): string {
    return this.record.jobId;
  }

  get host(): string {
    return this.record.endpoint ? new URL(this.record.endpoint).hostname : "slurm";
  }

  get envType(): EnvType {
    return this.record.envType;
  }

  get kind(): InstanceKind {
    return kindOf(this.record.labels);
  }

  get authToken(): string | undefined {
    return this.record.authToken;
  }

  get keep(): boolean {
    return this.record.labels[LABELS.keep] === "true";
  }

  endpoint(): string {
    if (this.kind !== "serve" || !this.record.endpoint) throw noServer(this.record.name, this.kind);
    return this.record.endpoint;
  }

  /**
   * Waits for the job to end; returns its exit code as Slurm reports it (128 + signal when
   * a signal ended it; -1 when Slurm no longer knows the job).
   */
  async wait(options: { signal?: AbortSignal } = {}): Promise<number> {
    for (;;) {
      const state = await this.settledState();
      if (state && (isActive(state.state) || state.state === "COMPLETING")) {
        await sleep(WAIT_INTERVAL_MS, undefined, options.signal ? { signal: options.signal } : {}).catch(
          (err: unknown) => {
            throw new AbortedError("waiting for the task", { cause: err });
          },
        );
        continue;
      }
      const [code, signal] = (state?.exitCode ?? "").split(":").map(Number);
      if (code === undefined || Number.isNaN(code)) return -1;
      return signal ? 128 + signal : code;
    }
  }

  /** The ports of `spec.ports` on the node it runs on. */
  async publishedPorts(): Promise<Record<number, string>> {
    const node = this.record.node;
    if (!node) return {};
    return Object.fromEntries((this.record.ports ?? []).map((port) => [port, `${node}:${port}`]));
  }

  /**
   * Runs `command` as a step of the job, on its node: in the container when the job holds
   * one, confined when the sandbox is. Past `timeoutMs` (or on an abort) the command's
   * processes are killed on the node, also those that left its process group (they all
   * carry its tag), and the call returns within a second; the node's own `timeout`, a
   * little later, is the backstop should this process be gone. Unlike the other runtimes, a
   * command leaving a background process on its output (`cmd &`) returns only once that
   * output closes or at its timeout (srun waits for the step's output): redirect it
   * (`cmd > log 2>&1 &`). A job that ended is reported as `InstanceGoneError`.
   */
  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    validateSandboxEnv(options.env, "env");
    const env = { ...this.envVars, ...options.env };
    const seconds =
      options.timeoutMs !== undefined
        ? Math.ceil(timerDelay(options.timeoutMs) / 1000) + NODE_BACKSTOP_S
        : undefined;
    const timeout =
      seconds !== undefined ? [systemTool("timeout") ?? "timeout", "-k", "5", String(seconds)] : [];
    const wrap = [this.commands.srun, `--jobid=${this.record.jobId}`, "--overlap", "--quiet"];
    const { isolation, network } = this.record;
    if (this.record.holds === "docker") {
      const cwd = options.cwd ?? this.record.workdir;
      // values on docker's command line, never in its (or srun's) own environment
      const envFlags = Object.entries(env).flatMap(([key, value]) => ["-e", `${key}=${value}`]);
      wrap.push(
        "docker",
        "exec",
        "-i",
        ...(cwd ? ["-w", cwd] : []),
        ...envFlags,
        this.record.container ?? "",
      );
      wrap.push(...timeout); // inside the container: killing `docker exec` would not end the command
    } else if (isolation) {
      // the launcher runs on the node from "/", with the service's environment; the request's
      // variables go in through the tool's own flag, the working directory is inside
      const cwd = options.cwd !== undefined ? sandboxCwd(options.cwd, isolation.cwd, "cwd") : isolation.cwd;
      const vars = sandboxVariables(SANDBOX_WORKDIR, this.tag, this.envVars, options.env);
      wrap.push("--chdir=/", ...timeout, ...confinedLauncher(isolation, network, cwd, vars));
    } else {
      const cwd = options.cwd ?? this.record.workdir;
      if (cwd?.includes("\0")) throw new ValidationError("cwd", "a path holds no NUL bytes");
      if (cwd) wrap.push(`--chdir=${cwd}`);
      wrap.push(...timeout, ...(network ? enterNetworkArgs(network) : []));
      // the variables apply to the command on the node, not to srun here
      wrap.push(systemTool("env") ?? "env", ...Object.entries(env).map(([key, value]) => `${key}=${value}`));
    }
    const result = await runLocal(command, {
      // srun exports the service's environment to the step, never the request's; the tag
      // marks what the command starts
      processEnv: { ...process.env, [INSTANCE_TAG_VARIABLE]: this.tag },
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      maxOutputBytes: options.maxOutputBytes,
      wrap,
      onKill: (tag) => this.killCommand(tag),
    });
    if (result.exitCode !== 0 && /^srun: error:/m.test(result.stderr)) {
      const state = await this.settledState();
      if (!state || !isActive(state.state)) {
        throw new InstanceGoneError(
          this.record.name,
          `its Slurm job ${this.record.jobId} ${describe(state)}`,
        );
      }
    }
    return { ...result, stderr: result.stderr.replace(SRUN_TASK_REPORT, "") };
  }

  /**
   * Kills, on the node, one command's processes: those carrying its tag, in the container
   * when the job holds one (see `KILL_TAGGED_SCRIPT`).
   */
  private async killCommand(tag: string): Promise<void> {
    const kill = ["sh", "-c", KILL_TAGGED_SCRIPT, "sh", COMMAND_TAG_VARIABLE, tag];
    const inContainer = this.record.holds === "docker" ? ["docker", "exec", this.record.container ?? ""] : [];
    await slurmCommand(
      this.commands.srun,
      [`--jobid=${this.record.jobId}`, "--overlap", "--quiet", ...inContainer, ...kill],
      { timeoutMs: KILL_WAIT_MS },
    ).catch(() => undefined); // the job may have ended: nothing left to kill
  }

  async logs(options: { tail?: number } = {}): Promise<string> {
    const text = await readFile(jobLogFile(this.records, this.record.name), "utf8").catch(() => "");
    return tailLines(text, options.tail);
  }

  followLogs(options: { tail?: number; signal?: AbortSignal } = {}): AsyncIterable<string> {
    return followFile(jobLogFile(this.records, this.record.name), options);
  }

  async isRunning(): Promise<boolean> {
    const state = await jobState(this.commands, this.record.jobId).catch(() => undefined);
    return state?.state === "RUNNING";
  }

  /** Reports the job ending (polled: Slurm has no event stream for clients). */
  watch(listener: (event: InstanceEvent) => void): () => void {
    let wasRunning = true;
    const timer = setInterval(() => {
      void this.isRunning().then((running) => {
        if (wasRunning && !running) listener("exited");
        wasRunning = running;
      });
    }, WATCH_INTERVAL_MS);
    timer.unref();
    return () => clearInterval(timer);
  }

  async refresh(): Promise<void> {}

  /** A job that ended does not come back (Slurm would start a new one: a new instance). */
  async revive(): Promise<boolean> {
    return this.isRunning();
  }

  async detach(): Promise<void> {}

  stop(): Promise<void> {
    this.stopping ??= this.cancel();
    return this.stopping;
  }

  stopSync(): void {
    if (this.stopping) return;
    spawnSync(this.commands.scancel, [this.record.jobId], { timeout: 10_000 });
    this.records.removeSync(this.record.name);
  }

  /** The job's state, waiting briefly while it is COMPLETING for the final one (CANCELLED, FAILED, ...). */
  private async settledState(): Promise<JobState | undefined> {
    for (let i = 0; ; i++) {
      const state = await jobState(this.commands, this.record.jobId).catch(() => undefined);
      if (state?.state !== "COMPLETING" || i >= 40) return state;
      await sleep(50);
    }
  }

  /** Unique to the job: what its commands start carries it in their environment. */
  private get tag(): string {
    return `slurm-${this.record.jobId}`;
  }

  /**
   * Ends, on the node, what the commands left behind outside the job's process tree
   * (`setsid`, daemons), which a Slurm without cgroup tracking would miss: the processes
   * whose environment carries this instance's tag.
   */
  private async killTagged(): Promise<void> {
    const script = `for p in /proc/[0-9]*; do grep -qzx ${shellQuote(`${INSTANCE_TAG_VARIABLE}=${this.tag}`)} "$p/environ" 2>/dev/null && kill -9 "\${p#/proc/}" 2>/dev/null; done; exit 0`;
    await slurmCommand(
      this.commands.srun,
      [`--jobid=${this.record.jobId}`, "--overlap", "--quiet", "sh", "-c", script],
      { timeoutMs: 20_000 },
    ).catch(() => undefined); // the job may have ended already: nothing left to kill
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Cancels the job and waits until it has ended (its container removed), then forgets it. */
  private async cancel(): Promise<void> {
    if (this.record.holds !== "docker") await this.killTagged();
    await slurmCommand(this.commands.scancel, [this.record.jobId]).catch(() => undefined);
    const deadline = Date.now() + STOP_WAIT_MS;
    while (Date.now() < deadline) {
      const state = await jobState(this.commands, this.record.jobId).catch(() => undefined);
      if (!state || (!isActive(state.state) && state.state !== "COMPLETING")) break;
      await sleep(50);
    }
    await removeSandboxFolders(this.record.isolation?.folders.root);
    await this.records.remove(this.record.name);
  }
}

/** "ended: CANCELLED", "ended: FAILED (exit 3:0)", or "is unknown to Slurm". */
export function describe(
  state: { state: string; reason?: string | undefined; exitCode?: string | undefined } | undefined,
): string {
  if (!state) return "is unknown to Slurm (ended long ago, or never existed)";
  const detail = [
    state.reason,
    state.exitCode && state.exitCode !== "0:0" ? `exit ${state.exitCode}` : undefined,
  ]
    .filter(Boolean)
    .join(", ");
  return `${isActive(state.state) ? "is" : "ended:"} ${state.state}${detail ? ` (${detail})` : ""}`;
}
