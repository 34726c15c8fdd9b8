import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import { StringDecoder } from "node:string_decoder";
import type { Readable } from "node:stream";
import { CommandError, InfrastructureError, TimeoutError } from "../../errors.js";
import type { Deadline } from "../../util/deadline.js";
import { OutputCap } from "../../util/output-cap.js";
import { tailLines } from "../../util/tail-lines.js";
import { shellQuote } from "../../util/shell-quote.js";
import type { Host } from "../host.js";
import { STATE_DIR } from "./marker.js";

/** How much of a failed command's output its `CommandError` keeps (the end, where the error is). */
const ERROR_TAIL_LINES = 200;
const ERROR_TAIL_BYTES = 256 * 1024;
const KILL_TIMEOUT_MS = 20_000;

/** Output of a command that succeeded. */
export interface CommandOutput {
  stdout: string;
  stderr: string;
}

/** Where and how to run a command on a host. */
export interface RemoteCommandOptions {
  cwd: string;
  env?: Readonly<Record<string, string>>;
  deadline: Deadline;
  /** Each line of stdout and stderr, as it comes. */
  onOutput?: ((line: string) => void) | undefined;
}

/**
 * Runs a (long) command on a host, streaming its output lines. The deadline kills it
 * and throws `TimeoutError`/`AbortedError`; a non-zero exit throws `CommandError` with
 * the tail of stdout and stderr.
 */
export async function runStreaming(
  host: Host,
  command: string,
  options: RemoteCommandOptions,
): Promise<CommandOutput> {
  const { deadline } = options;
  deadline.check();
  const pidFile = newPidFile();
  const child = await host.spawn(killable(command, pidFile), {
    cwd: options.cwd,
    ...(options.env ? { env: options.env } : {}),
  });
  // Nothing is typed in: a tool that prompts gets end-of-file instead of waiting forever.
  child.stdin.end();
  const release = killOnDeadline(host, options.cwd, pidFile, deadline, () => child.kill());
  try {
    const [stdout, stderr, exitCode] = await Promise.all([
      collect(child.stdout, options.onOutput),
      collect(child.stderr, options.onOutput),
      child.exit,
    ]);
    if (deadline.fired) throw deadline.error();
    if (exitCode !== 0) {
      throw new CommandError(command, exitCode === -1 ? null : exitCode, tail(stdout), tail(stderr));
    }
    return { stdout: stdout.text(), stderr: stderr.text() };
  } finally {
    release();
  }
}

/**
 * Runs a short command on a host and returns its stdout; a non-zero exit throws
 * `CommandError`, the deadline kills it and throws `TimeoutError`/`AbortedError`.
 */
export async function runQuiet(
  host: Host,
  command: string,
  options: Pick<RemoteCommandOptions, "cwd" | "deadline"> & { maxOutputBytes?: number },
): Promise<string> {
  const { deadline } = options;
  deadline.check();
  const pidFile = newPidFile();
  const release = killOnDeadline(host, options.cwd, pidFile, deadline);
  let result;
  try {
    result = await host.exec(killable(command, pidFile), {
      cwd: options.cwd,
      ...(options.maxOutputBytes !== undefined ? { maxOutputBytes: options.maxOutputBytes } : {}),
    });
  } finally {
    release();
  }
  if (deadline.fired) throw deadline.error();
  if (result.exitCode !== 0) throw new CommandError(command, result.exitCode, result.stdout, result.stderr);
  // A cut output would be read as something it is not (e.g. a wrong fingerprint).
  if (result.truncated) throw new InfrastructureError(`${host.label}: output of ${command} is too large`);
  return result.stdout;
}

function newPidFile(): string {
  return posix.join(STATE_DIR, `run-${randomBytes(6).toString("hex")}.pid`);
}

/**
 * `command`, recording the process group it runs in. sshd ignores a channel's KILL
 * signal and keeps a closed channel's command running, so stopping it takes a kill of
 * its group from another command. sshd starts every session in a session (and process
 * group) of its own, led by the shell whose `$$` this records; the command runs in a
 * subshell so that its own `exit` still removes the record.
 */
function killable(command: string, pidFile: string): string {
  const record = shellQuote(pidFile);
  return [
    `mkdir -p ${STATE_DIR} && echo $$ > ${record} || exit`,
    `(\n${command}\n)`,
    "code=$?",
    `rm -f ${record}`,
    "exit $code",
  ].join("\n");
}

/**
 * Once the deadline fires, kills the process group `killable` recorded (waiting a
 * moment for a command that has just started), or calls `fallback` when that fails.
 * Returns the function that stops watching.
 */
function killOnDeadline(
  host: Host,
  cwd: string,
  pidFile: string,
  deadline: Deadline,
  fallback: () => void = () => undefined,
): () => void {
  const record = shellQuote(pidFile);
  const kill = [
    `for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s ${record} ] && break; sleep 0.2; done`,
    `pgid=$(cat ${record}) && rm -f ${record} && kill -KILL -- -"$pgid"`,
  ].join("; ");
  const onAbort = () => {
    host
      .exec(kill, { cwd, timeoutMs: KILL_TIMEOUT_MS })
      .then((r) => r.exitCode === 0 || fallback())
      .catch(fallback);
  };
  deadline.signal?.addEventListener("abort", onAbort, { once: true });
  if (deadline.fired) onAbort();
  return () => deadline.signal?.removeEventListener("abort", onAbort);
}

/** Runs `fn` (e.g. SFTP calls, which take no signal), checking the deadline before and after. */
export async function withinDeadline<T>(deadline: Deadline, fn: () => Promise<T>): Promise<T> {
  deadline.check();
  try {
    const value = await fn();
    deadline.check();
    return value;
  } catch (err) {
    // What failed because the deadline fired (e.g. an exec aborted by its signal) becomes its typed error.
    if (deadline.fired && !(err instanceof TimeoutError)) throw deadline.error(err);
    throw err;
  }
}

function tail(cap: OutputCap): string {
  return tailLines(cap.text(), ERROR_TAIL_LINES);
}

/** Gathers a stream (its head and tail when large), passing each complete line to `onLine`. */
function collect(stream: Readable, onLine: ((line: string) => void) | undefined): Promise<OutputCap> {
  const cap = new OutputCap(ERROR_TAIL_BYTES);
  const decoder = new StringDecoder("utf8");
  let partial = "";
  const emit = (text: string) => {
    if (!onLine) return;
    const lines = (partial + text).split(/\r?\n|\r/);
    partial = lines.pop() ?? "";
    for (const line of lines) onLine(line);
  };
  return new Promise((resolve, reject) => {
    stream.on("data", (chunk: Buffer) => {
      cap.push(chunk);
      emit(decoder.write(chunk));
    });
    stream.once("error", reject);
    stream.once("end", () => {
      emit(decoder.end());
      if (partial && onLine) onLine(partial);
      resolve(cap);
    });
  });
}
