import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { statSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AbortedError, InstanceGoneError, ValidationError } from "../../errors.js";
import { runLocal } from "../../host/local-command.js";
import { INSTANCE_TAG_VARIABLE, killTagged } from "../../util/tagged-processes.js";
import { followFile } from "../../util/follow-file.js";
import { tailLines } from "../../util/tail-lines.js";
import type { ExecOptions, ExecResult, InstanceEvent, RuntimeInstance } from "../instance.js";
import { noServer } from "../instance.js";
import type { InstanceKind } from "../instance-spec.js";
import { LABELS, kindOf } from "../labels.js";
import type { ProcessRecord } from "./process-state.js";
import { instanceDir, processStartTicks, recordIsAlive, removeInstanceDir } from "./process-state.js";
import type { SandboxNetwork } from "../sandbox-network.js";
import { enterNetworkArgs } from "../sandbox-network.js";
import { SANDBOX_WORKDIR, sandboxCwd } from "./sandbox-cwd.js";
import { launcherEnv, sandboxVariables, validateSandboxEnv } from "./sandbox-env.js";
import { removeSandboxFolders } from "./sandbox-folder.js";
import { confinedLauncher } from "./sandbox-launcher.js";

const STOP_GRACE_MS = 3_000;

/** An instance held by a local subprocess (its own process group): a method server, a shell sandbox or a task. */
export class ProcessInstance implements RuntimeInstance {
  readonly runtime = "process" as const;
  readonly host = "localhost";
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly record: ProcessRecord,
    readonly reused: boolean,
    envVars: Readonly<Record<string, string>> = {},
    private readonly child?: ChildProcess,
  ) {
    // the recorded variables first: an adopting client (a restarted service) knows none
    this.envVars = { ...record.envVars, ...envVars };
  }

  private readonly envVars: Readonly<Record<string, string>>;

  get id(): string {
    return `process-${this.record.pid}`;
  }

  get name(): string {
    return this.record.name;
  }

  get envType() {
    return this.record.envType;
  }

  get kind(): InstanceKind {
    return kindOf(this.record.labels);
  }

  get keep(): boolean {
    return this.record.labels[LABELS.keep] === "true";
  }

  get authToken(): string | undefined {
    return this.record.authToken;
  }

  get pid(): number {
    return this.record.pid;
  }

  endpoint(): string {
    if (this.kind !== "serve") throw noServer(this.record.name, this.kind);
    return `http://127.0.0.1:${this.record.port}`;
  }

  /** Waits for the process to exit; its exit code as the task recorded it (128 + signal when it was killed). */
  async wait(options: { signal?: AbortSignal } = {}): Promise<number> {
    const child = this.child;
    if (child && this.alive()) {
      await once(child, "exit", options.signal ? { signal: options.signal } : {}).catch((err: unknown) => {
        throw options.signal?.aborted ? new AbortedError("waiting for the task", { cause: err }) : err;
      });
    }
    while (this.alive()) {
      if (options.signal?.aborted) throw new AbortedError("waiting for the task");
      await sleep(50);
    }
    const recorded = (await readFile(exitCodeFile(this.record.name), "utf8").catch(() => "")).trim();
    if (/^\d+$/.test(recorded)) return Number(recorded);
    if (child?.exitCode !== null && child?.exitCode !== undefined) return child.exitCode;
    const signal = child?.signalCode ? osConstants.signals[child.signalCode] : undefined;
    return signal !== undefined ? 128 + signal : -1;
  }

  /** A task's ports: on this machine's loopback (it shares the host's network). */
  async publishedPorts(): Promise<Record<number, string>> {
    return Object.fromEntries((this.record.ports ?? []).map((port) => [port, `127.0.0.1:${port}`]));
  }

  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    // as `docker exec` into a stopped container, a command never runs in a stopped instance
    if (!this.alive()) throw new InstanceGoneError(this.record.name, "its process exited");
    validateSandboxEnv(options.env, "env");
    const { isolation, network } = this.record;
    if (network && !networkHolderAlive(network)) {
      // never enter whatever namespace a reused pid has: the sandbox's is gone
      throw new InstanceGoneError(this.record.name, "its network namespace's process exited");
    }
    const run = {
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      maxOutputBytes: options.maxOutputBytes,
    };
    if (isolation) {
      const cwd = options.cwd !== undefined ? sandboxCwd(options.cwd, isolation.cwd, "cwd") : isolation.cwd;
      const vars = sandboxVariables(SANDBOX_WORKDIR, this.tag, this.envVars, options.env);
      return runLocal(command, {
        ...run,
        // the launcher runs from "/" with nothing of the request; the shell starts in its folder inside
        cwd: "/",
        wrap: confinedLauncher(isolation, network, cwd, vars),
        processEnv: launcherEnv(this.tag),
      });
    }
    const cwd = options.cwd ?? this.record.envPath;
    if (cwd.includes("\0") || !isFolder(cwd)) throw new ValidationError("cwd", `${cwd} is not a folder`);
    return runLocal(command, {
      ...run,
      cwd,
      ...(network ? { wrap: enterNetworkArgs(network) } : {}),
      processEnv: { ...process.env, ...this.envVars, ...options.env, [INSTANCE_TAG_VARIABLE]: this.tag },
    });
  }

  async logs(options: { tail?: number } = {}): Promise<string> {
    const text = await readFile(logFile(this.record.name), "utf8").catch(() => "");
    return tailLines(text, options.tail);
  }

  followLogs(options: { tail?: number; signal?: AbortSignal } = {}): AsyncIterable<string> {
    return followFile(logFile(this.record.name), options);
  }

  async isRunning(): Promise<boolean> {
    return this.alive();
  }

  watch(listener: (event: InstanceEvent) => void): () => void {
    const child = this.child;
    if (!child) return () => {}; // adopted from another client: only health checks see it
    const onExit = () => listener("exited");
    child.on("exit", onExit);
    return () => child.off("exit", onExit);
  }

  async refresh(): Promise<void> {}

  async revive(): Promise<boolean> {
    return this.alive(); // a process that exited does not come back (no restart policy here)
  }

  async detach(): Promise<void> {}

  stop(): Promise<void> {
    this.stopping ??= this.terminate();
    return this.stopping;
  }

  stopSync(): void {
    if (this.stopping) return;
    this.signalGroup("SIGKILL");
    killTagged(INSTANCE_TAG_VARIABLE, this.tag);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private async terminate(): Promise<void> {
    this.signalGroup("SIGTERM");
    if (!(await this.exited(STOP_GRACE_MS))) this.signalGroup("SIGKILL");
    killTagged(INSTANCE_TAG_VARIABLE, this.tag);
    await removeSandboxFolders(this.record.isolation?.folders.root);
    await removeInstanceDir(this.record.name);
  }

  /** Waits up to `ms` for the server to exit: its exit event when it is our child, else polling. */
  private async exited(ms: number): Promise<boolean> {
    if (!this.alive()) return true;
    const child = this.child;
    if (child) {
      // The timer is what keeps the event loop alive until the (unref'd) child's exit
      // arrives; it is cancelled then, so it never delays the process's own exit.
      const cancel = new AbortController();
      const timer = sleep(ms, false, { signal: cancel.signal }).catch(() => true);
      const exit = once(child, "exit").then(() => true);
      const exited = await Promise.race([exit, timer]);
      cancel.abort();
      return exited;
    }
    const deadline = Date.now() + ms;
    while (this.alive() && Date.now() < deadline) await sleep(10);
    return !this.alive();
  }

  /** Unique to this instance's life: a later instance of the same name gets another. */
  private get tag(): string {
    return this.record.tag ?? `${this.record.name}:${this.record.pid}:${this.record.startTicks ?? 0}`;
  }

  private alive(): boolean {
    if (this.child) return this.child.exitCode === null && this.child.signalCode === null;
    return recordIsAlive(this.record);
  }

  private signalGroup(signal: NodeJS.Signals): void {
    // Never the whole session or init, and never a process that merely reuses the pid.
    if (!(this.record.pid > 1) || (!this.child && !recordIsAlive(this.record))) return;
    try {
      process.kill(-this.record.pid, signal); // the server and anything user code spawned
    } catch {
      // already gone
    }
  }
}

/** Whether the process holding a sandbox's network namespace is still the one recorded. */
function networkHolderAlive(network: SandboxNetwork): boolean {
  const ticks = processStartTicks(network.pid);
  return ticks !== undefined && (network.startTicks === undefined || ticks === network.startTicks);
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Where a task's shell records its command's exit code. */
export function exitCodeFile(name: string): string {
  return join(instanceDir(name), "exit-code");
}

export function logFile(name: string): string {
  return join(instanceDir(name), "server.log");
}
