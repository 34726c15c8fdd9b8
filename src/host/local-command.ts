import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { constants } from "node:os";
import { AbortedError } from "../errors.js";
import { COMMAND_TAG_VARIABLE, killTagged, tagCommand } from "../util/tagged-processes.js";
import type { ExecResult, HostExecOptions, HostProcess, SpawnOptions } from "./command.js";
import { checkEnvNames } from "./shell-line.js";
import type { StartedCommand } from "./started-command.js";
import { collectCommand, processOf } from "./started-command.js";

/** How a command is launched on this machine, besides what every host takes. */
export interface LocalLaunch {
  /** A command line the shell runs under (a sandboxing tool's, srun's), as `wrap... sh -c command`. */
  wrap?: readonly string[];
  /** The environment the launcher (or the shell) starts with; default this process's. `env` is added to it. */
  processEnv?: NodeJS.ProcessEnv;
}

/** Options of a command run on this machine. */
export type LocalExecOptions = HostExecOptions & LocalLaunch;

/**
 * Runs `sh -c command` on this machine, in its own process group, through the exec every
 * host shares (`collectCommand`): past its timeout, or on an abort, the command is ended
 * with everything it started (its group, and every process carrying its tag, also those
 * that left the group), and the call returns within a second. A command leaving a
 * background process on its output (`cmd &`) returns once that output is quiet; the
 * output is then closed, so such a process should write elsewhere (`cmd > log 2>&1 &`).
 */
export function runLocal(command: string, options: LocalExecOptions = {}): Promise<ExecResult> {
  return execLocal((tag) => shellArgv(command, tag, options), options);
}

/** Runs a program (no shell) on this machine, as `runLocal` runs a command; a missing program rejects with its ENOENT. */
export function runLocalFile(
  file: string,
  args: readonly string[],
  options: LocalExecOptions = {},
): Promise<ExecResult> {
  return execLocal(() => [file, ...args], options);
}

/** Starts `sh -c command` on this machine with its streams handed over (see `Host.spawn`). */
export async function spawnLocal(
  command: string,
  options: SpawnOptions & LocalLaunch = {},
): Promise<HostProcess> {
  if (options.signal?.aborted) throw new AbortedError("command", { cause: options.signal.reason });
  const tag = randomUUID();
  return processOf(startLocal(shellArgv(command, tag, options), tag, options), options);
}

async function execLocal(argv: (tag: string) => string[], options: LocalExecOptions): Promise<ExecResult> {
  if (options.signal?.aborted) throw new AbortedError("command", { cause: options.signal.reason });
  const tag = randomUUID();
  return collectCommand(startLocal(argv(tag), tag, options), options);
}

/** The tag goes in the environment too: it marks the launcher, and the script's export holds past one that clears it. */
function shellArgv(command: string, tag: string, options: LocalLaunch): string[] {
  return [...(options.wrap ?? []), "sh", "-c", tagCommand(tag, command)];
}

/** Starts `argv` in a process group of its own, every process of it tagged. */
function startLocal(
  argv: readonly string[],
  tag: string,
  options: LocalLaunch & Pick<HostExecOptions, "cwd" | "env">,
): StartedCommand {
  checkEnvNames(options.env ?? {});
  const [file = "sh", ...args] = argv;
  const child = spawn(file, args, {
    cwd: options.cwd,
    env: { ...(options.processEnv ?? process.env), ...options.env, [COMMAND_TAG_VARIABLE]: tag },
    detached: true,
    stdio: "pipe",
  });
  const exited = new Promise<number>((resolve, reject) => {
    child.once("exit", (code, signal) => resolve(exitCode(code, signal)));
    child.once("error", reject);
  });
  const closed = new Promise<void>((resolve) => {
    child.once("close", () => resolve());
    child.once("error", () => resolve());
  });
  return {
    tag,
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    exited,
    closed,
    killTree: async () => {
      killGroup(child.pid);
      killTagged(COMMAND_TAG_VARIABLE, tag);
    },
    release: () => {
      // stop reading what a process left in the background may still hold open
      child.stdout.destroy();
      child.stderr.destroy();
      child.unref();
    },
  };
}

/** The shell's exit code, or 128 + the signal that ended it (as a shell reports it). */
function exitCode(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const number = signal ? constants.signals[signal] : undefined;
  return 128 + (number ?? 1);
}

function killGroup(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(-pid, "SIGKILL"); // the shell and what it started in its group
  } catch {
    // already gone
  }
}
