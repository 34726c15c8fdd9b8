import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { constants } from "node:os";
import { COMMAND_TAG_VARIABLE, killTagged, tagCommand } from "../util/tagged-processes.js";
import type { ExecOptions, ExecResult, HostExecOptions } from "./command.js";
import { checkEnvNames } from "./shell-line.js";
import type { StartedCommand } from "./started-command.js";
import { checkAborted, collectCommand } from "./started-command.js";

/** How a command is launched on this machine, besides what every host takes. */
export interface LocalLaunch {
  /** A command line the shell runs under (a sandboxing tool's, srun's), as `wrap... sh -c command`. */
  wrap?: readonly string[];
  /** The environment the launcher (or the shell) starts with; default this process's. `env` is added to it. */
  processEnv?: NodeJS.ProcessEnv;
}

/**
 * The local host's exec (see `Host.exec`), with the launch options only this machine has:
 * runs `sh -c command`, or a program and its arguments (no shell; a missing one rejects
 * with its ENOENT).
 */
export async function runLocal(
  command: string | readonly string[],
  options: HostExecOptions & LocalLaunch = {},
): Promise<ExecResult> {
  checkAborted(options.signal);
  return collectCommand(startLocal(command, options), options);
}

/**
 * Starts a command on this machine in a process group of its own, every process of it
 * tagged (the launcher too, through its environment; the shell's own export holds past a
 * launcher that clears it). Its tree ends with its group and every process carrying its
 * tag, also those that left the group (`setsid`, daemons).
 */
export function startLocal(
  command: string | readonly string[],
  options: LocalLaunch & Pick<ExecOptions, "cwd" | "env">,
): StartedCommand {
  checkEnvNames(options.env ?? {});
  const tag = randomUUID();
  const argv =
    typeof command === "string" ? [...(options.wrap ?? []), "sh", "-c", tagCommand(tag, command)] : command;
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
