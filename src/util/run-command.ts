import { spawn } from "node:child_process";
import { AbortedError } from "../errors.js";
import type { ExecResult } from "../runtime/instance.js";
import { OutputCap } from "./output-cap.js";

export interface RunCommandOptions {
  maxOutputBytes?: number | undefined;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** A command line the shell runs under (e.g. a sandboxing tool's), as `wrap... sh -c command`. */
  wrap?: readonly string[];
}

/** Exit code reported for a command stopped by its timeout, as coreutils `timeout` does. */
export const TIMEOUT_EXIT_CODE = 124;

/**
 * Runs `sh -c command` in its own process group, collecting output. A command past its
 * timeout is killed (with its children) and reported with `timedOut: true` and the output
 * it produced; an abort through `signal` kills it and rejects with `AbortedError`.
 */
export function runShellCommand(command: string, options: RunCommandOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) return reject(new AbortedError("command"));
    const [file = "sh", ...args] = [...(options.wrap ?? []), "sh", "-c", command];
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const stdout = new OutputCap(options.maxOutputBytes);
    const stderr = new OutputCap(options.maxOutputBytes);
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    let timedOut = false;
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    };
    const timer =
      options.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            killGroup();
          }, options.timeoutMs)
        : undefined;
    const onAbort = () => killGroup();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    child.on("error", (err) => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      reject(err);
    });
    child.on("close", (code, sig) => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      if (options.signal?.aborted)
        return reject(new AbortedError("command", { cause: options.signal.reason }));
      resolve({
        stdout: stdout.text(),
        stderr: stderr.text(),
        exitCode: timedOut ? TIMEOUT_EXIT_CODE : (code ?? 128 + signalNumber(sig)),
        timedOut,
        truncated: stdout.truncated || stderr.truncated,
      });
    });
  });
}

function signalNumber(sig: NodeJS.Signals | null): number {
  return sig === "SIGKILL" ? 9 : sig === "SIGTERM" ? 15 : 1;
}
