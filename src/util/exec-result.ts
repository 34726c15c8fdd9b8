import type { OperationOptions } from "./deadline.js";

/** Options of a command run in an instance or on a host. */
export interface ExecOptions extends OperationOptions {
  cwd?: string;
  env?: Readonly<Record<string, string>>;
  /** Cap of each of stdout and stderr (default 10 MiB); past it the head and tail are kept. */
  maxOutputBytes?: number;
}

/** The outcome of a command run in an instance or on a host. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  /** True when the command was stopped by its `timeoutMs`; the output is what it wrote until then. */
  timedOut: boolean;
  /** True when stdout or stderr passed `maxOutputBytes` and their middle was dropped. */
  truncated: boolean;
}
