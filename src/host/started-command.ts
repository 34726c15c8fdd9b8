import type { Readable, Writable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { AbortedError } from "../errors.js";
import {
  CommandEnd,
  KILL_WAIT_MS,
  SETTLE_AFTER_KILL_MS,
  TIMEOUT_EXIT_CODE,
  atMost,
} from "../util/command-end.js";
import { Deadline } from "../util/deadline.js";
import { OutputCap } from "../util/output-cap.js";
import type { ExecResult, HostExecOptions, HostProcess, SpawnOptions } from "./command.js";

/**
 * A command a host started: its streams, and the host kind's one way to end its whole
 * tree. Every process of it carries `tag` (see `tagCommand`).
 */
export interface StartedCommand {
  readonly tag: string;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** The shell's exit code, once it exited (its output may stay open); rejects when it could not start. */
  readonly exited: Promise<number>;
  /** Resolves once stdout and stderr closed. */
  readonly closed: Promise<void>;
  /** Ends the command's processes, also those that left its process group or session. */
  killTree(): Promise<void>;
  /** Closes the streams, which a process left in the background may hold open. */
  release(): void;
}

/**
 * Runs a started command to its end and collects its output: the exec of every host
 * kind. Past the deadline (or on the abort) the command's whole tree is ended and the
 * call returns within a second, whatever the command left behind: with `timedOut: true`
 * and the output so far, or (abort) rejecting with `AbortedError`. A command that exits
 * leaving a background process holding its output returns once that output has been
 * quiet briefly (see `CommandEnd`); its streams are then closed.
 */
export async function collectCommand(command: StartedCommand, options: HostExecOptions): Promise<ExecResult> {
  const deadline = new Deadline("command", options);
  const end = new CommandEnd();
  const stdout = capture(command.stdout, "stdout", end, options);
  const stderr = capture(command.stderr, "stderr", end, options);
  command.stdin.on("error", () => undefined); // a command that never reads its input
  command.stdin.end(options.input);
  let code = -1;
  let failure: { error: unknown } | undefined;
  command.exited.then(
    (exitCode) => {
      code = exitCode;
      end.exited();
    },
    (error: unknown) => {
      failure = { error };
      end.closed();
    },
  );
  void command.closed.then(() => end.closed());
  let timedOut = false;
  let killing: Promise<void> | undefined;
  const stop = () => {
    timedOut = !options.signal?.aborted;
    killing ??= killAll(command, options).then(() => end.limit(SETTLE_AFTER_KILL_MS));
  };
  deadline.signal?.addEventListener("abort", stop, { once: true });
  if (deadline.fired) stop();
  try {
    await end.ended;
    await killing; // what the deadline started is finished before the call returns
  } finally {
    deadline.signal?.removeEventListener("abort", stop);
    command.release();
  }
  if (failure) throw failure.error;
  if (options.signal?.aborted) throw new AbortedError("command", { cause: options.signal.reason });
  return {
    stdout: stdout.text(),
    stderr: stderr.text(),
    exitCode: timedOut ? TIMEOUT_EXIT_CODE : code,
    timedOut,
    truncated: stdout.truncated || stderr.truncated || end.cutShort,
  };
}

/**
 * A started command as a `HostProcess`: its streams handed over, its whole tree ended by
 * `kill()` or by the deadline; `exit` resolves once its output closed.
 */
export function processOf(command: StartedCommand, options: SpawnOptions): HostProcess {
  const deadline = new Deadline("command", options);
  let ended = false;
  let killing: Promise<void> | undefined;
  const kill = (): Promise<void> => {
    if (ended) return Promise.resolve();
    // what still holds the output afterwards is cut off, so `exit` resolves
    killing ??= killAll(command, options).then(() => {
      setTimeout(() => command.release(), SETTLE_AFTER_KILL_MS).unref();
    });
    return killing;
  };
  const onAbort = () => void kill();
  deadline.signal?.addEventListener("abort", onAbort, { once: true });
  if (deadline.fired) onAbort();
  const exit = Promise.all([command.exited.catch(() => -1), command.closed]).then(([code]) => {
    ended = true;
    deadline.signal?.removeEventListener("abort", onAbort);
    return code;
  });
  return { stdin: command.stdin, stdout: command.stdout, stderr: command.stderr, exit, kill };
}

/** Ends the command's tree and whatever `onKill` ends, waiting at most `KILL_WAIT_MS`. */
function killAll(command: StartedCommand, options: SpawnOptions): Promise<void> {
  return atMost(Promise.allSettled([command.killTree(), options.onKill?.(command.tag)]), KILL_WAIT_MS);
}

/** Collects one stream (capped), passing its text to `onOutput` as it comes. */
function capture(
  stream: Readable,
  name: "stdout" | "stderr",
  end: CommandEnd,
  options: HostExecOptions,
): OutputCap {
  const cap = new OutputCap(options.maxOutputBytes);
  const onOutput = options.onOutput;
  const decoder = onOutput ? new StringDecoder("utf8") : undefined;
  stream.on("data", (chunk: Buffer) => {
    cap.push(chunk);
    end.output();
    const text = decoder?.write(chunk);
    if (text) onOutput?.(text, name);
  });
  stream.once("end", () => {
    const rest = decoder?.end();
    if (rest) onOutput?.(rest, name);
  });
  return cap;
}

/** Refuses to start a command for a caller who already gave up. */
export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError("command", { cause: signal.reason });
}
