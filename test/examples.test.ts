import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { deployHosts, hasDeployHosts } from "./helpers/deploy-hosts.js";
import { hasDocker } from "./helpers/docker.js";
import { killAndWait } from "./helpers/client-process.js";
import { repoRoot } from "./helpers/paths.js";
import { serve } from "./helpers/service.js";

const run = promisify(execFile);

/** Runs the quickstart exactly as `npm start` does, in a separate process. */
async function quickstart(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", "examples/quickstart.ts", ...args], {
    cwd: repoRoot,
    timeout: 120_000,
  });
  return stdout;
}

function expectQuickstartOutput(stdout: string, mode: string): void {
  expect(stdout).toMatch(new RegExp(`✓ Environment started: \\S+ \\(${mode}, http://`));
  expect(stdout).toContain("add(a=1, b=2) = 3");
  expect(stdout).toContain('stats([1, 2, 3, 4]) = {"mean":2.5');
  expect(stdout).toContain("divide(a=1, b=0) raised ZeroDivisionError: division by zero");
}

describe("examples/quickstart.ts", () => {
  it("runs on the process runtime", async () => {
    expectQuickstartOutput(await quickstart("--mode", "process"), "process");
  });

  it.skipIf(!hasDocker)("runs on docker", async () => {
    expectQuickstartOutput(await quickstart("--mode", "docker"), "docker");
  });

  it("rejects a bad --mode with a clear message and exit code 2", async () => {
    const error = await quickstart("--mode", "kubernetes").catch((e: unknown) => e);
    expect((error as { code?: number }).code).toBe(2);
    expect((error as { stderr?: string }).stderr).toMatch(/--mode must be "docker" or "process"/);
  });
});

describe.skipIf(!hasDocker)("examples/control-plane.ts", () => {
  it("runs against a service, as its header says", async () => {
    const apiKey = "example-key-0123456789abcdef";
    const service = await serve("--api-key", apiKey);
    try {
      const { stdout } = await run(process.execPath, ["--import", "tsx", "examples/control-plane.ts"], {
        cwd: repoRoot,
        timeout: 120_000,
        env: { ...process.env, AFFINETES_URL: service.url, AFFINETES_API_KEY: apiKey },
      });
      expect(stdout).toContain("  | counted 11 words");
      expect(stdout).toContain('top words: [["the",4],["cat",2]]');
      expect(stdout).toContain("exit code: 0 files: poem.txt");
    } finally {
      await killAndWait(service.child, "SIGTERM");
    }
  });
});

describe.skipIf(!hasDeployHosts)("examples/deploy.ts", () => {
  it("deploys to an SSH host, as its header says", async () => {
    const root = `/tmp/affinetes-test-example-deploy-${process.pid}`;
    try {
      const { stdout } = await run(process.execPath, ["--import", "tsx", "examples/deploy.ts"], {
        cwd: repoRoot,
        timeout: 180_000,
        env: { ...process.env, AFFINETES_DEPLOY_HOST: deployHosts[0].url, AFFINETES_DEPLOY_ROOT: root },
      });
      expect(stdout).toContain("files there: env.py (2 sent)");
      expect(stdout).toContain("in the venv: True 1 (exit 0)");
      expect(stdout).toContain("job exited (0); results: answer.txt = 42");
      expect(stdout).toContain("rank 0 of 1, master 127.0.0.3");
    } finally {
      await run("rm", ["-rf", root]);
    }
  });
});
