import type { Readable, Writable } from "node:stream";

import type { ExecOptions } from "../util/exec-result.js";

export type { ExecOptions, ExecResult } from "../util/exec-result.js";

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
