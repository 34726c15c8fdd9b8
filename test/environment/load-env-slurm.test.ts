import { execFile } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { request } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { buildImageFromEnv, cleanupAllEnvironments, connectEnv, loadEnv } from "../../src/index.js";
import { afs } from "../helpers/afs.js";
import { hasDocker } from "../helpers/docker.js";
import { examplePath } from "../helpers/paths.js";
import { hasSlurm } from "../helpers/slurm.js";
import { loadEnvSuite } from "./load-env-suite.js";

const run = promisify(execFile);
const images = {
  calculator: "affinetes-test/calculator:latest",
  actor: "affinetes-test/actor:latest",
} as const;

/** The state of Slurm job `id` (empty once Slurm forgot it). */
async function jobState(id: string): Promise<string> {
  const { stdout } = await run("squeue", ["-h", "-t", "all", "-j", id, "-o", "%T"]).catch(() => ({
    stdout: "",
  }));
  return stdout.trim();
}

const jobOf = (instanceId: string) => instanceId.replace("slurm-", "");

describe.skipIf(!hasSlurm || !hasDocker)("slurm: images in Docker containers held by jobs", () => {
  loadEnvSuite({
    mode: "slurm",
    setup: async () => {
      await Promise.all(
        Object.entries(images).map(([name, imageTag]) =>
          buildImageFromEnv({ envPath: examplePath(name), imageTag, quiet: true }),
        ),
      );
    },
    options: (example, extra) => ({ image: images[example], mode: "slurm", ...extra }),
    exists: async (id) => (await jobState(jobOf(id))) === "RUNNING",
  });
});

describe.skipIf(!hasSlurm)("slurm: loadEnv, connectEnv and afs", () => {
  afterAll(async () => {
    await cleanupAllEnvironments();
  });

  it("runs 2 replicas of an environment folder as jobs, reached at their node; cleanup cancels them", async () => {
    const env = await loadEnv({
      envPath: examplePath("calculator"),
      mode: "slurm",
      replicas: 2,
      slurm: { sbatchArgs: ["--time=10"] },
    });
    expect(env.mode).toBe("slurm");
    const jobs = env.instances.map((i) => jobOf(i.id));
    expect(new Set(jobs).size).toBe(2);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => env.add({ a: i, b: 1 })));
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const other = await connectEnv(env.name, { mode: "slurm" });
    expect(other.replicas).toBe(2);
    expect(await other.add({ a: 2, b: 2 })).toBe(4);
    await other.cleanup();
    await env.cleanup();
    for (const job of jobs) expect(await jobState(job)).not.toBe("RUNNING");
  });

  it("each job's server answers only its owner: a token of its own, kept in a 0600 record; 401 without it", async () => {
    await using env = await loadEnv({
      envPath: examplePath("calculator"),
      mode: "slurm",
      slurm: { sbatchArgs: ["--time=10"] },
    });
    expect(env.instances[0]?.authToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const stranger = await request(`${env.endpoint}/call`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"method":"add","args":[1,2]}',
    });
    expect(stranger.statusCode).toBe(401);
    await stranger.body.text();
    const record = join(process.env.AFFINETES_STATE_DIR as string, "slurm", env.name, "state.json");
    expect(statSync(record).mode & 0o777).toBe(0o600);
    expect(await env.add({ a: 1, b: 2 })).toBe(3);
  });

  it("refuses hosts in mode slurm", async () => {
    await expect(
      loadEnv({ envPath: examplePath("calculator"), mode: "slurm", hosts: ["ssh://root@127.0.0.2:2222"] }),
    ).rejects.toMatchObject({ code: "VALIDATION", message: expect.stringMatching(/Slurm places the jobs/) });
  });

  it("afs run --mode slurm, then ls, call and stop find the job", async () => {
    const name = `afs-slurm-${process.pid}`;
    const started = await afs([
      "run",
      "--dir",
      examplePath("calculator"),
      "--mode",
      "slurm",
      "--name",
      name,
      "--json",
    ]);
    expect(started.code, started.stderr).toBe(0);
    const job = jobOf((JSON.parse(started.stdout) as { instances: Array<{ id: string }> }).instances[0]!.id);
    const listed = await afs(["ls", "--json"]);
    expect(listed.stdout).toContain(name);
    const called = await afs(["call", name, "add", "--arg", "a=20", "--arg", "b=22"]);
    expect(called.stdout.trim()).toBe("42");
    expect((await afs(["stop", name])).code).toBe(0);
    expect(await jobState(job)).not.toBe("RUNNING");
  });
});
