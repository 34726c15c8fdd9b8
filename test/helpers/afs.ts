import { spawn } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "./paths.js";

/** The built `afs` binary. */
export const afsBin = join(repoRoot, "dist", "cli", "main.js");

export interface AfsResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `afs ARGS` in its own process, as a user would, and waits for it. */
export function afs(
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<AfsResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [afsBin, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `afs ${args.join(" ")} did not exit within ${options.timeoutMs ?? 120_000} ms\n${stdout}\n${stderr}`,
        ),
      );
    }, options.timeoutMs ?? 120_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}
