import type { Readable, Writable } from "node:stream";
import type { OperationOptions } from "../util/deadline.js";

/** How a command runs: where, with what, and for how long. */
export interface ExecOptions extends OperationOptions {
  cwd?: string;
  env?: Readonly<Record<string, string>>;
  /** Cap of each of stdout and stderr (default 10 MiB); past it the head and tail are kept. */
  maxOutputBytes?: number;
}

/** The outcome of a command. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  /** True when the command was stopped by its `timeoutMs`; the output is what it wrote until then. */
  timedOut: boolean;
  /** True when stdout or stderr passed `maxOutputBytes` and their middle was dropped. */
  truncated: boolean;
}

/** Options of `Host.spawn`: past the deadline (or on the abort) the command's whole tree is ended. */
export interface SpawnOptions extends Omit<ExecOptions, "maxOutputBytes"> {
  /**
   * Also run when the deadline ends the command, with the command's tag (see
   * `COMMAND_TAG_VARIABLE`): ends what the command started that is not among its
   * processes on the host (a container it ran, a job step on another node). Waited for
   * as long as the kill of the command's own processes.
   */
  onKill?: (tag: string) => Promise<unknown>;
}

/** Options of `Host.exec`. */
export interface HostExecOptions extends ExecOptions, SpawnOptions {
  /** What the command reads on stdin (default: nothing, an immediate end of file). */
  input?: string | Buffer;
  /** Receives output as it is written (the result still holds all of it, capped). */
  onOutput?: (chunk: string, stream: "stdout" | "stderr") => void;
}

/** A command running on a host, its streams open. */
export interface HostProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** The exit code once the command's output closed (-1 when it ended without one, e.g. killed over SSH). */
  readonly exit: Promise<number>;
  /** Ends the command and every process it started; its streams close soon after. Idempotent. */
  kill(): Promise<void>;
}
