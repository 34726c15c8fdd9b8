import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killAndWait } from "../helpers/client-process.js";
import { hasDocker, testBaseImage } from "../helpers/docker.js";
import type { Service } from "../helpers/service.js";
import { call, run, serve, serviceDb } from "../helpers/service.js";
import { hasSlurm } from "../helpers/slurm.js";

const exec = promisify(execFile);

/** The Slurm job holding the instance `runId`, from the service's own stats. */
async function jobOf(service: Service, runId: string): Promise<string> {
  const stats = await call(service, `/stats?run_id=${runId}`);
  const [instance] = stats.json.instances as Array<{ runtime_id: string }>;
  return instance!.runtime_id.replace("slurm-", "");
}

async function jobState(job: string): Promise<string> {
  const { stdout } = await exec("squeue", ["-h", "-t", "all", "-j", job, "-o", "%T"]).catch(() => ({
    stdout: "",
  }));
  return stdout.trim();
}

describe.skipIf(!hasSlurm)("the rollout service with --runner slurm", () => {
  let service: Service;
  const db = serviceDb();
  const args = [
    "--runner",
    "slurm",
    "--sbatch-arg=--time=9",
    "--db",
    db,
    "--service-id",
    "slurm-svc",
    "--max-resources",
    '{"instances":6}',
  ];

  beforeAll(async () => {
    service = await serve(...args);
  });

  afterAll(async () => {
    await killAndWait(service.child, "SIGTERM");
  });

  it("runs the lifecycle of a shell on the node: commands as job steps, timeout with partial output, close cancels the job", async () => {
    const start = await call(service, "/start_instance", {
      run_id: "shell",
      environment_config: { container_type: "local", env: { FROM_START: "yes" } },
    });
    expect(start.status, JSON.stringify(start.json)).toBe(200);
    const job = await jobOf(service, "shell");
    expect(await jobState(job)).toBe("RUNNING");
    expect(await run(service, "shell", "echo $SLURM_JOB_ID $FROM_START; echo err >&2; exit 3")).toBe(
      `${job} yes\nerr\n`,
    );
    await run(service, "shell", "echo kept > note.txt");
    expect(await run(service, "shell", "cat note.txt")).toBe("kept\n");
    const slow = await call(service, "/execute_command", {
      run_id: "shell",
      cmd: "echo partial; sleep 30",
      timeout: 1,
    });
    expect(slow.status).toBe(200);
    expect(slow.json.result).toMatchObject({ output: "partial\n", timed_out: true });
    expect(await run(service, "shell", "echo usable")).toBe("usable\n");
    expect((await call(service, "/close_instance", { run_id: "shell" })).status).toBe(200);
    expect(await jobState(job)).not.toBe("RUNNING");
  });

  it("passes the server's --sbatch-arg, then the request's sbatch_args, to the job", async () => {
    await call(service, "/start_instance", {
      run_id: "args",
      environment_config: { container_type: "local", sbatch_args: ["--time=11"] },
    });
    const job = await jobOf(service, "args");
    const { stdout } = await exec("scontrol", ["show", "job", "-o", job]);
    expect(stdout).toMatch(/TimeLimit=00:11:00/);
    await call(service, "/close_instance", { run_id: "args" });
  });

  it("reports a job that died (scancel) as gone, not as a command failure, and frees its resources", async () => {
    await call(service, "/start_instance", {
      run_id: "doomed",
      environment_config: { container_type: "local" },
    });
    const job = await jobOf(service, "doomed");
    await exec("scancel", [job]);
    const res = await call(service, "/execute_command", { run_id: "doomed", cmd: "echo hi" });
    expect(res).toMatchObject({
      status: 410,
      json: { detail: expect.stringMatching(new RegExp(`Slurm job ${job} ended: CANCELLED`)) },
    });
    expect((await call(service, "/get_available_resources")).json).toEqual({ instances: 6 });
  });

  it.skipIf(!hasDocker)(
    "holds a Docker container in the job; commands run inside it; close removes it",
    async () => {
      const start = await call(service, "/start_instance", {
        run_id: "box",
        environment_config: { container_type: "docker", image: testBaseImage, cwd: "/tmp" },
      });
      expect(start.status, JSON.stringify(start.json)).toBe(200);
      try {
        // at once: start answers once the container runs, not only its job
        expect(await run(service, "box", "head -1 /etc/os-release; pwd")).toMatch(/Debian.*\n\/tmp\n$/);
      } finally {
        await call(service, "/close_instance", { run_id: "box" }); // a failure here must not leave it to the next test
      }
      const { stdout } = await exec("docker", [
        "ps",
        "-a",
        "-q",
        "--filter",
        "label=affinetes.slurm.instance",
      ]);
      expect(stdout.trim()).toBe("");
    },
  );

  it("killed and restarted, the service adopts its jobs", async () => {
    await call(service, "/start_instance", {
      run_id: "survivor",
      environment_config: { container_type: "local" },
    });
    await run(service, "survivor", "echo 1 > state");
    await killAndWait(service.child, "SIGKILL");
    service = await serve(...args);
    expect(service.output()).toMatch(/recovered: 1 adopted/);
    expect(await run(service, "survivor", "cat state")).toBe("1\n");
    await call(service, "/close_instance", { run_id: "survivor" });
  });

  it("sbatch_args on a local runner are refused", async () => {
    const local = await serve();
    try {
      const res = await call(local, "/start_instance", {
        run_id: "x",
        environment_config: { container_type: "local", sbatch_args: ["--time=1"] },
      });
      expect(res).toMatchObject({ status: 400, json: { field: "environment_config.sbatch_args" } });
    } finally {
      await killAndWait(local.child, "SIGTERM");
    }
  });
});
