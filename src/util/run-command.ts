import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { constants } from "node:os";
import { AbortedError } from "../errors.js";
import type { ExecResult } from "./exec-result.js";
import { CommandEnd, KILL_WAIT_MS, SETTLE_AFTER_KILL_MS, atMost } from "./command-end.js";
import { timerDelay } from "./deadline.js";
import { OutputCap } from "./output-cap.js";
import { COMMAND_TAG_VARIABLE, killTagged, tagCommand } from "./tagged-processes.js";

export interface RunCommandOptions {
  maxOutputBytes?: number | undefined;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** A command line the shell runs under (e.g. a sandboxing tool's), as `wrap... sh -c command`. */
  wrap?: readonly string[];
  /**
   * Ends the command's processes where this machine cannot see them (e.g. on the node a
   * job step runs on), on its deadline or abort; `tag` marks them all (see
   * `COMMAND_TAG_VARIABLE`). The call waits for it at most `KILL_WAIT_MS`.
   */
  kill?: (tag: string) => Promise<unknown>;
}

/** Exit code reported for a command stopped by its timeout, as coreutils `timeout` does. */
export const TIMEOUT_EXIT_CODE = 124;

/**
 * Runs `sh -c command` in its own process group, collecting output. A command past its
 * timeout is killed with everything it started (its group, and every process carrying
 * its tag, also those that left the group) and reported with `timedOut: true` and the
 * output it produced, within a second of the deadline whatever it left behind; an abort
 * through `signal` does the same and rejects with `AbortedError`.
 *
 * A command that exits leaving a background process holding its output (`cmd &`) returns
 * once that output has been quiet briefly (see `CommandEnd`; `truncated` when it was cut
 * while still flowing). The output is then closed, so such a process should write
 * elsewhere (`cmd > log 2>&1 &`), as with `nohup`: a later write to it fails (SIGPIPE).
 */
export function runShellCommand(command: string, options: RunCommandOptions = {}): Promise<ExecResult> {
  if (options.signal?.aborted) return Promise.reject(new AbortedError("command"));
  const tag = randomUUID();
  // the environment tags the launcher too; the script's export holds past one that clears it
  const [file = "sh", ...args] = [...(options.wrap ?? []), "sh", "-c", tagCommand(tag, command)];
  const child = spawn(file, args, {
    cwd: options.cwd,
    env: { ...(options.env ?? process.env), [COMMAND_TAG_VARIABLE]: tag },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  return collect(child, tag, options);
}

async function collect(child: ChildProcess, tag: string, options: RunCommandOptions): Promise<ExecResult> {
  const end = new CommandEnd();
  const stdout = new OutputCap(options.maxOutputBytes);
  const stderr = new OutputCap(options.maxOutputBytes);
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout.push(chunk);
    end.output();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr.push(chunk);
    end.output();
  });
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let failure: Error | undefined;
  child.on("exit", (code, signal) => {
    exit = { code, signal };
    end.exited();
  });
  child.on("close", (code, signal) => {
    exit ??= { code, signal };
    end.closed();
  });
  child.on("error", (err) => {
    failure = err;
    end.closed();
  });

  let timedOut = false;
  let killing: Promise<void> | undefined;
  const stopTree = () => {
    killing ??= (async () => {
      killGroup(child.pid);
      killTagged(COMMAND_TAG_VARIABLE, tag);
      if (options.kill) await atMost(options.kill(tag), KILL_WAIT_MS);
      end.limit(SETTLE_AFTER_KILL_MS);
    })();
  };
  const timer =
    options.timeoutMs !== undefined
      ? setTimeout(() => {
          timedOut = true;
          stopTree();
        }, timerDelay(options.timeoutMs))
      : undefined;
  options.signal?.addEventListener("abort", stopTree, { once: true });
  try {
    await end.ended;
    await killing; // what the deadline started is finished before the call returns
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", stopTree);
    // stop reading what a process left in the background may still hold open
    child.stdout?.destroy();
    child.stderr?.destroy();
    child.unref();
  }
  if (failure) throw failure;
  if (options.signal?.aborted) throw new AbortedError("command", { cause: options.signal.reason });
  return {
    stdout: stdout.text(),
    stderr: stderr.text(),
    exitCode: timedOut ? TIMEOUT_EXIT_CODE : exitCode(exit),
    timedOut,
    truncated: stdout.truncated || stderr.truncated || end.cutShort,
  };
}

/** The shell's exit code, or 128 + the signal that ended it (as a shell reports it). */
function exitCode(exit: { code: number | null; signal: NodeJS.Signals | null } | undefined): number {
  if (exit?.code !== null && exit?.code !== undefined) return exit.code;
  const signal = exit?.signal ? constants.signals[exit.signal] : undefined;
  return 128 + (signal ?? 1);
}

function killGroup(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(-pid, "SIGKILL"); // the shell and what it started in its group
  } catch {
    // already gone
  }
}
