import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { afs } from "../helpers/afs.js";
import { killAndWait, startHoldingClient } from "../helpers/client-process.js";
import { hasDocker, managedContainers } from "../helpers/docker.js";
import { examplePath } from "../helpers/paths.js";
import { execFileSync, spawn } from "node:child_process";
import { afsBin } from "../helpers/afs.js";
import { buildImageFromEnv } from "../../src/index.js";

const mode = hasDocker ? "docker" : "process";
const fastapiPython = ["/usr/bin/python3", "python3"].find((python) => {
  try {
    execFileSync(python, ["-c", "import fastapi, uvicorn"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
});

describe("afs init, .env, logs -f, gc", () => {
  it("init writes templates that run as is with afs run --dir", async () => {
    const dir = mkdtempSync(join(tmpdir(), "afs-init-"));
    const init = await afs(["init", "greeter"], { cwd: dir });
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toContain("next: afs run --dir greeter --name greeter");
    const name = `greeter-${process.pid}`;
    const run = await afs(
      ["run", "--dir", "greeter", "--name", name, "--mode", mode, "--env", "GREETING=Hi"],
      { cwd: dir },
    );
    expect(run.code, run.stderr).toBe(0);
    try {
      expect(JSON.parse((await afs(["call", name, "hello", "--arg", "name=you"])).stdout)).toBe(
        "Hello, you!",
      );
      expect(JSON.parse((await afs(["call", name, "greet"])).stdout)).toEqual({ message: "Hi, world!" });
    } finally {
      await afs(["stop", name]);
    }
    const again = await afs(["init", "greeter"], { cwd: dir });
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exists and is not empty/);
    expect((await afs(["init", "x", "--type", "grpc"], { cwd: dir })).code).toBe(2);
  });

  it("run reads a .env file in the current folder; --env wins over it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "afs-dotenv-"));
    writeFileSync(join(dir, ".env"), "# secrets\nAPI_KEY=from-dotenv\nOTHER='x y'\n");
    const name = `dotenv-${process.pid}`;
    const run = await afs(["run", "--dir", examplePath("actor"), "--mode", "process", "--name", name], {
      cwd: dir,
    });
    expect(run.code, run.stderr).toBe(0);
    try {
      expect(JSON.parse((await afs(["call", name, "whoami"])).stdout)).toMatchObject({
        api_key: "from-dotenv",
      });
    } finally {
      await afs(["stop", name]);
    }
    const over = `dotenv2-${process.pid}`;
    await afs(
      ["run", "--dir", examplePath("actor"), "--mode", "process", "--name", over, "-e", "API_KEY=flag"],
      { cwd: dir },
    );
    try {
      expect(JSON.parse((await afs(["call", over, "whoami"])).stdout)).toMatchObject({ api_key: "flag" });
    } finally {
      await afs(["stop", over]);
    }
  });

  it("logs -f keeps printing until interrupted", async () => {
    const name = `follow-${process.pid}`;
    await afs(["run", "--dir", examplePath("calculator"), "--mode", "process", "--name", name]);
    try {
      const child = spawn(process.execPath, [afsBin, "logs", name, "-f"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      for (let i = 0; i < 100 && !out.includes("listening on"); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(out).toContain("listening on");
      const exit = await killAndWait(child, "SIGINT");
      expect(exit.code === 130 || exit.signal === "SIGINT").toBe(true);
    } finally {
      await afs(["stop", name]);
    }
  });

  it.skipIf(!hasDocker)("gc removes what a SIGKILLed client left behind", async () => {
    const image = "affinetes-test/calculator:latest";
    await buildImageFromEnv({ envPath: examplePath("calculator"), imageTag: image, quiet: true });
    const { child, instanceId } = await startHoldingClient("docker", image);
    await killAndWait(child, "SIGKILL");
    expect((await managedContainers(child.pid)).map((c) => c.Id)).toContain(instanceId);
    const gc = await afs(["gc"]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).toMatch(/✓ Removed /);
    expect(await managedContainers(child.pid)).toEqual([]);
  });

  it("stop --all removes every environment (isolated: own state dir, no Docker engine)", async () => {
    const env = {
      AFFINETES_STATE_DIR: mkdtempSync(join(tmpdir(), "afs-stop-all-")),
      DOCKER_HOST: "unix:///nonexistent/docker.sock",
    };
    for (const name of ["one", "two"]) {
      const run = await afs(
        ["run", "--dir", examplePath("calculator"), "--mode", "process", "--name", name],
        { env },
      );
      expect(run.code, run.stderr).toBe(0);
    }
    const stop = await afs(["--json", "stop", "--all"], { env });
    expect(JSON.parse(stop.stdout)).toEqual({ removed: expect.arrayContaining(["one", "two"]) });
    expect(JSON.parse((await afs(["ls", "--json"], { env })).stdout)).toEqual([]);
  });

  it.skipIf(!fastapiPython)("init --type http writes a FastAPI environment that runs as is", async () => {
    const dir = mkdtempSync(join(tmpdir(), "afs-init-http-"));
    expect((await afs(["init", "web", "--type", "http"], { cwd: dir })).code).toBe(0);
    const name = `web-${process.pid}`;
    const env = { AFFINETES_PYTHON: fastapiPython };
    const run = await afs(["run", "--dir", "web", "--mode", "process", "--name", name], { cwd: dir, env });
    expect(run.code, run.stderr).toBe(0);
    try {
      expect(JSON.parse((await afs(["call", name, "greet", "--arg", "name=http"])).stdout)).toEqual({
        message: "Hello, http!",
      });
    } finally {
      await afs(["stop", name]);
    }
  });

  it("stop needs a name or --all, and build reports a missing tag as usage", async () => {
    expect((await afs(["stop"])).code).toBe(2);
    expect((await afs(["build", examplePath("calculator")])).code).toBe(2);
    expect((await afs(["run"])).code).toBe(2);
    expect((await afs(["run", "x:1", "--mode", "k8s"])).code).toBe(2);
  });
});
