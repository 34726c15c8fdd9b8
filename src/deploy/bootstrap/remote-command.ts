import { CommandError, InfrastructureError, TimeoutError } from "../../errors.js";
import type { Host } from "../../host/host.js";
import type { Deadline } from "../../util/deadline.js";
import { tailLines } from "../../util/tail-lines.js";
import { LineSplitter } from "../line-splitter.js";

/** How much of a failed command's output its `CommandError` keeps (the end, where the error is). */
const ERROR_TAIL_LINES = 200;
const ERROR_TAIL_BYTES = 256 * 1024;

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
 * Runs a (long) command on a host, streaming its output lines. The deadline ends its
 * whole tree and throws `TimeoutError`/`AbortedError`; a non-zero exit throws
 * `CommandError` with the tail of stdout and stderr.
 */
export async function runStreaming(
  host: Host,
  command: string,
  options: RemoteCommandOptions,
): Promise<CommandOutput> {
  const { onOutput } = options;
  const lines = { stdout: new LineSplitter(/\r?\n|\r/), stderr: new LineSplitter(/\r?\n|\r/) };
  const result = await withinDeadline(options.deadline, () =>
    host.exec(command, {
      cwd: options.cwd,
      maxOutputBytes: ERROR_TAIL_BYTES,
      ...(options.deadline.signal ? { signal: options.deadline.signal } : {}),
      ...(options.env ? { env: options.env } : {}),
      ...(onOutput ? { onOutput: (chunk, stream) => lines[stream].push(chunk).forEach(onOutput) } : {}),
    }),
  );
  for (const rest of [lines.stdout.end(), lines.stderr.end()]) if (rest) onOutput?.(rest);
  if (result.exitCode !== 0) {
    const code = result.exitCode === -1 ? null : result.exitCode;
    throw new CommandError(command, code, tail(result.stdout), tail(result.stderr));
  }
  return { stdout: result.stdout, stderr: result.stderr };
}

/**
 * Runs a short command on a host and returns its stdout; a non-zero exit throws
 * `CommandError`, the deadline ends it and throws `TimeoutError`/`AbortedError`.
 */
export async function runQuiet(
  host: Host,
  command: string,
  options: Pick<RemoteCommandOptions, "cwd" | "deadline"> & { maxOutputBytes?: number },
): Promise<string> {
  const { deadline } = options;
  const result = await withinDeadline(deadline, () =>
    host.exec(command, {
      cwd: options.cwd,
      ...(deadline.signal ? { signal: deadline.signal } : {}),
      ...(options.maxOutputBytes !== undefined ? { maxOutputBytes: options.maxOutputBytes } : {}),
    }),
  );
  if (result.exitCode !== 0) throw new CommandError(command, result.exitCode, result.stdout, result.stderr);
  // A cut output would be read as something it is not (e.g. a wrong fingerprint).
  if (result.truncated) throw new InfrastructureError(`${host.label}: output of ${command} is too large`);
  return result.stdout;
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

function tail(text: string): string {
  return tailLines(text, ERROR_TAIL_LINES);
}
