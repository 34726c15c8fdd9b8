import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { request } from "undici";
import { describe, expect, it } from "vitest";
import { buildImageFromEnv } from "../../src/index.js";
import type { SlurmInstance } from "../../src/runtime/slurm/slurm-instance.js";
import { SlurmRuntime } from "../../src/runtime/slurm/slurm-runtime.js";
import { hasDocker } from "../helpers/docker.js";
import { examplePath, fixturePath } from "../helpers/paths.js";
import { hasSlurm } from "../helpers/slurm.js";
import { runtimeConformance } from "./conformance.js";

const run = promisify(execFile);
const hasBwrap = spawnSync("bwrap", ["--version"]).status === 0;

if (hasSlurm) {
  runtimeConformance({
    name: "slurm",
    runtime: async () => new SlurmRuntime(),
    spec: (overrides) => ({ envName: "calculator", envPath: examplePath("calculator"), ...overrides }),
    brokenSpec: () => ({ envName: "broken", envPath: fixturePath("broken-env") }),
    sandboxSpec: (workdir) => ({ envName: "sandbox", serve: false, workdir }),
    sandboxWorkdir: () => mkdtempSync(join(tmpdir(), "affinetes-sandbox-")),
  });
} else {
  describe.skip("runtime conformance: slurm (no Slurm controller answers)", () => {
    it("skipped", () => {});
  });
}

describe.skipIf(!hasSlurm)("slurm runtime: jobs", () => {
  const runtime = new SlurmRuntime({ sbatchArgs: ["--time=5"] });

  it("a job that dies is reported as such, not as a command failure", async () => {
    const sandbox = (await runtime.start({ envName: "dies", serve: false })) as SlurmInstance;
    await run("scancel", [sandbox.jobId]);
    await expect(sandbox.exec("echo hi")).rejects.toMatchObject({
      code: "INSTANCE_GONE",
      message: expect.stringMatching(/Slurm job \d+ ended: CANCELLED/),
    });
    await sandbox.stop();
  });

  it("sbatch arguments reach the job: the runtime's first, the instance's after (and winning)", async () => {
    const sandbox = (await runtime.start({
      envName: "args",
      serve: false,
      schedulerArgs: ["--time=7"],
    })) as SlurmInstance;
    try {
      const { stdout } = await run("scontrol", ["show", "job", "-o", sandbox.jobId]);
      expect(stdout).toMatch(/TimeLimit=00:07:00/);
    } finally {
      await sandbox.stop();
    }
  });

  it("a request Slurm refuses, or one that stays pending past the timeout, fails clearly and leaves nothing", async () => {
    await expect(
      runtime.start({ envName: "huge", serve: false, schedulerArgs: ["--mem=100000000"] }),
    ).rejects.toMatchObject({ code: "SLURM", message: expect.stringMatching(/sbatch/) });
    await expect(
      runtime.start(
        { envName: "later", serve: false, schedulerArgs: ["--begin=now+3600"] },
        { timeoutMs: 1_500 },
      ),
    ).rejects.toMatchObject({
      code: "START_FAILED",
      message: expect.stringMatching(/PENDING \(BeginTime\)/),
    });
    // other suites' instances share the state folder: look at these two only
    expect((await runtime.list()).filter((i) => ["huge", "later"].includes(i.envName))).toEqual([]);
    const { stdout } = await run("squeue", ["--me", "-h", "-n", "later"]);
    expect(stdout.trim()).toBe("");
  });

  it.skipIf(!hasDocker)(
    "holds a Docker container: the image's server reached at the node, commands inside",
    async () => {
      const image = "affinetes-test/calculator:latest";
      await buildImageFromEnv({ envPath: examplePath("calculator"), imageTag: image, quiet: true });
      const docker = new SlurmRuntime({ container: "docker" });
      const instance = (await docker.start({ envName: "calc", image })) as SlurmInstance;
      try {
        const res = await request(`${instance.endpoint()}/call`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ method: "add", args: [], kwargs: { a: 2, b: 3 } }),
        });
        expect(await res.body.json()).toMatchObject({ status: "success", result: 5 });
        expect((await instance.exec("pwd; test -f /app/env.py && echo in-image")).stdout).toBe(
          "/app\nin-image\n",
        );
      } finally {
        await instance.stop();
      }
      const { stdout } = await run("docker", [
        "ps",
        "-a",
        "-q",
        "--filter",
        `name=affinetes-slurm-${instance.name}`,
      ]);
      expect(stdout.trim()).toBe("");
    },
  );

  it.skipIf(!hasBwrap)("confines a sandbox's commands on the node (bubblewrap)", async () => {
    const confined = new SlurmRuntime({ container: "bubblewrap" });
    const sandbox = await confined.start({ envName: "bw", serve: false });
    try {
      expect((await sandbox.exec("echo ok > mine && cat mine")).stdout).toBe("ok\n");
      expect((await sandbox.exec("touch /etc/escape")).exitCode).not.toBe(0);
    } finally {
      await sandbox.stop();
    }
  });
});
