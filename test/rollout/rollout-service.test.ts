import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImageFromEnv } from "../../src/index.js";
import { afs, afsBin } from "../helpers/afs.js";
import { killAndWait } from "../helpers/client-process.js";
import { hasDocker, managedContainers } from "../helpers/docker.js";
import { examplePath } from "../helpers/paths.js";
import type { Service } from "../helpers/service.js";
import { call, run, serve } from "../helpers/service.js";

const hasBwrap = spawnSync("bwrap", ["--version"]).status === 0;

describe("the rollout service (afs serve)", () => {
  let service: Service;

  beforeAll(async () => {
    service = await serve("--max-resources", '{"instances":10,"cpus":16}');
  });

  afterAll(async () => {
    if (service) await killAndWait(service.child, "SIGTERM");
  });

  it("runs the lifecycle of a local instance: start, commands, timeout with partial output, close", async () => {
    expect(
      await call(service, "/start_instance", {
        run_id: "life",
        environment_config: { container_type: "local" },
      }),
    ).toEqual({
      status: 200,
      json: { status: "success", instance_id: "life" },
    });
    const ok = await call(service, "/execute_command", {
      run_id: "life",
      cmd: "echo out; echo err >&2; echo $X",
      env: { X: "y" },
    });
    expect(ok.json).toEqual({
      status: "success",
      result: { output: "out\nerr\ny\n", returncode: 0, timed_out: false, truncated: false },
    });
    const failed = await call(service, "/execute_command", { run_id: "life", cmd: "exit 3" });
    expect((failed.json.result as { returncode: number }).returncode).toBe(3);
    const slow = await call(service, "/execute_command", {
      run_id: "life",
      cmd: "echo partial; sleep 30",
      timeout: 0.3,
    });
    expect(slow.status).toBe(200); // never a 500
    expect(slow.json.result).toMatchObject({ output: "partial\n", timed_out: true });
    expect((slow.json.result as { returncode: number }).returncode).not.toBe(0);
    expect(
      (await call(service, "/execute_command", { run_id: "life", cmd: "echo still usable" })).json.result,
    ).toMatchObject({
      output: "still usable\n",
    });
    const stats = await call(service, "/stats?run_id=life");
    expect((stats.json.instances as Array<{ num_cmd: number }>)[0]?.num_cmd).toBe(4);
    expect(await call(service, "/close_instance", { run_id: "life" })).toEqual({
      status: 200,
      json: { status: "success" },
    });
    expect((await call(service, "/close_instance", { run_id: "life" })).status).toBe(200); // idempotent
    expect((await call(service, "/execute_command", { run_id: "life", cmd: "true" })).status).toBe(404);
  });

  it.skipIf(!hasDocker)(
    "runs a docker instance (flat form) through the engine's exec, and removes it on close",
    async () => {
      const image = "affinetes-test/calculator:latest";
      await buildImageFromEnv({ envPath: examplePath("calculator"), imageTag: image, quiet: true });
      const start = await call(service, "/start_instance", {
        run_id: "dock",
        container_image: image,
        container_type: "docker",
      });
      expect(start.status, JSON.stringify(start.json)).toBe(200);
      const os = await call(service, "/execute_command", { run_id: "dock", cmd: "head -1 /etc/os-release" });
      expect((os.json.result as { output: string }).output).toMatch(/Debian/);
      const labelled = (await managedContainers()).filter(
        (c) => c.Labels["affinetes.rollout.run"] === "dock",
      );
      expect(labelled).toHaveLength(1);
      await call(service, "/close_instance", { run_id: "dock" });
      expect((await managedContainers()).filter((c) => c.Labels["affinetes.rollout.run"] === "dock")).toEqual(
        [],
      );
    },
  );

  it.skipIf(!hasBwrap)("runs a bubblewrap instance: read-only system, private working folder", async () => {
    const start = await call(service, "/start_instance", {
      run_id: "bw",
      environment_config: { container_type: "bubblewrap" },
    });
    expect(start.status, JSON.stringify(start.json)).toBe(200);
    expect(await run(service, "bw", "echo hi > mine.txt && cat mine.txt")).toBe("hi\n");
    const escape = await call(service, "/execute_command", { run_id: "bw", cmd: "touch /etc/escape" });
    expect(escape.json.result).toMatchObject({ returncode: 1, output: expect.stringMatching(/Read-only/) });
    await call(service, "/close_instance", { run_id: "bw" });
  });

  it("refuses container types whose tool is missing, saying how to install it (apptainer, enroot)", async () => {
    for (const type of ["apptainer", "singularity", "enroot"]) {
      const res = await call(service, "/start_instance", {
        run_id: `no-${type}`,
        environment_config: { container_type: type, image: "img.sif" },
      });
      expect(res.status).toBe(400);
      expect(res.json.detail).toMatch(new RegExp(`${type} is not available on this server: .*install it`));
    }
    expect((await call(service, "/get_available_resources")).json).toMatchObject({ instances: 10 });
  });

  it("admits exactly 10 of 50 concurrent starts against instances: 10; the others get 429 naming what is short", async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        call(service, "/start_instance", {
          run_id: `race-${i}`,
          environment_config: { container_type: "local" },
        }),
      ),
    );
    const admitted = results.filter((r) => r.status === 200);
    expect(admitted).toHaveLength(10);
    for (const r of results.filter((r) => r.status !== 200)) {
      expect(r.status).toBe(429);
      expect(r.json.detail).toMatch(/instances \(requested 1, available 0\)/);
    }
    // each was charged the default cpu (1), not nothing: it left cpus out
    expect((await call(service, "/get_available_resources")).json).toEqual({ instances: 0, cpus: 6 });
    await Promise.all(results.map((_, i) => call(service, "/close_instance", { run_id: `race-${i}` })));
    expect((await call(service, "/get_available_resources")).json).toEqual({ instances: 10, cpus: 16 });
  });

  it("refuses bad input with the right status: 400 naming the field, 409 duplicate, 429 on a tracked resource", async () => {
    const missing = await call(service, "/start_instance", {
      environment_config: { container_type: "local" },
    });
    expect(missing).toMatchObject({ status: 400, json: { field: "run_id" } });
    const badType = await call(service, "/start_instance", {
      run_id: "x",
      environment_config: { container_type: "vm" },
    });
    expect(badType).toMatchObject({ status: 400, json: { field: "environment_config.container_type" } });
    const unknownField = await call(service, "/execute_command", { run_id: "x", cmd: "true", shell: "zsh" });
    expect(unknownField).toMatchObject({ status: 400, json: { field: "shell" } });
    const notJson = await request(`${service.url}/start_instance`, {
      method: "POST",
      body: "{nope",
      headers: { "content-type": "application/json" },
    });
    expect(notJson.statusCode).toBe(400);
    await notJson.body.dump();
    const config = { container_type: "local", resources: { cpus: 10 } };
    expect(
      (await call(service, "/start_instance", { run_id: "dup", environment_config: config })).status,
    ).toBe(200);
    expect(
      (await call(service, "/start_instance", { run_id: "dup", environment_config: config })).status,
    ).toBe(409);
    const cpus = await call(service, "/start_instance", { run_id: "cpu", environment_config: config });
    expect(cpus).toMatchObject({ status: 429, json: { short: { cpus: { requested: 10, available: 6 } } } });
    await call(service, "/close_instance", { run_id: "dup" });
  });

  it("serves its OpenAPI document, generated from the request schemas", async () => {
    const doc = await call(service, "/openapi.json");
    expect(doc.status).toBe(200);
    const paths = doc.json.paths as Record<string, Record<string, { requestBody?: unknown }>>;
    expect(Object.keys(paths)).toEqual(
      expect.arrayContaining(["/start_instance", "/execute_command", "/close_instance", "/stats", "/health"]),
    );
    expect(JSON.stringify(paths["/start_instance"]?.post?.requestBody)).toContain('"enroot"');
    expect(JSON.stringify(paths["/execute_command"]?.post?.requestBody)).toContain('"cmd"');
  });

  it("--environments: a start request names a predefined entry, or names one and overrides fields", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "affinetes-envs-")), "envs.json");
    writeFileSync(
      file,
      JSON.stringify({
        shell: { container_type: "local", env: { GREETING: "hello", NAME: "base" }, timeout: 30 },
      }),
    );
    const withEnvs = await serve("--environments", file);
    try {
      expect(
        (await call(withEnvs, "/start_instance", { run_id: "a", environment_config: "shell" })).status,
      ).toBe(200);
      expect(await run(withEnvs, "a", "echo $GREETING $NAME")).toBe("hello base\n");
      const overridden = await call(withEnvs, "/start_instance", {
        run_id: "b",
        environment_config: { name: "shell", env: { NAME: "override" } },
      });
      expect(overridden.status).toBe(200);
      expect(await run(withEnvs, "b", "echo $GREETING $NAME")).toBe("hello override\n");
      const unknown = await call(withEnvs, "/start_instance", { run_id: "c", environment_config: "nope" });
      expect(unknown).toMatchObject({ status: 404, json: { detail: expect.stringMatching(/known: shell/) } });
    } finally {
      await killAndWait(withEnvs.child, "SIGTERM");
    }
    writeFileSync(file, JSON.stringify({ bad: { container_type: "vm" } }));
    const refused = await afs(["serve", "--port", "0", "--environments", file]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/bad\.container_type/);
  });

  it("with --api-key, requests without the key get 401", async () => {
    const secured = await serve("--api-key", "s3cret");
    try {
      expect((await call(secured, "/health")).status).toBe(401);
      expect((await call(secured, "/health", undefined, { authorization: "Bearer wrong" })).status).toBe(401);
      expect(await call(secured, "/health", undefined, { authorization: "Bearer s3cret" })).toEqual({
        status: 200,
        json: { status: "ok" },
      });
    } finally {
      await killAndWait(secured.child, "SIGTERM");
    }
  });

  it("is also installed as arservice, with the same flags", async () => {
    const db = join(mkdtempSync(join(tmpdir(), "affinetes-svc-")), "service.db");
    const bin = afsBin.replace(/main\.js$/, "arservice.js");
    const child = spawn(process.execPath, [bin, "--port", "0", "--db", db], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        const match = /listening on (http:\/\/\S+)/.exec(out);
        if (match?.[1]) resolve(match[1]);
      });
      child.once("exit", (code) => reject(new Error(`arservice exited with ${code}: ${out}`)));
    });
    try {
      expect(await call({ url }, "/health")).toEqual({ status: 200, json: { status: "ok" } });
    } finally {
      await killAndWait(child, "SIGTERM");
    }
  });
});
