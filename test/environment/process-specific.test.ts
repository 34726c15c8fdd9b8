import { execFileSync, spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { ProcessRuntime, loadEnv } from "../../src/index.js";
import { processIsAlive } from "../../src/runtime/labels.js";
import { killAndWait, startHoldingClient } from "../helpers/client-process.js";
import { inCi } from "../helpers/docker.js";
import { examplePath, fixturePath } from "../helpers/paths.js";

async function waitUntilDead(pid: number): Promise<boolean> {
  for (let i = 0; i < 100 && processIsAlive(pid); i++) await sleep(50);
  return !processIsAlive(pid);
}

/** A Python with FastAPI and uvicorn, for HTTP-based environments in process mode. */
function pythonWithFastapi(): string | undefined {
  for (const python of ["/usr/bin/python3", "python3"]) {
    try {
      execFileSync(python, ["-c", "import fastapi, uvicorn"], { stdio: "ignore" });
      return python;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

const fastapiPython = pythonWithFastapi();
if (!fastapiPython && inCi)
  throw new Error("CI requires a python3 with fastapi and uvicorn (.ci/run installs them)");
if (!fastapiPython)
  console.warn("[affinetes tests] HTTP-based process test skipped: no python3 with fastapi and uvicorn");

describe("process environments", () => {
  it("a client killed with SIGTERM leaves no server process behind", async () => {
    const { child, instanceId } = await startHoldingClient("process", examplePath("calculator"));
    const pid = Number(instanceId.replace("process-", ""));
    expect(processIsAlive(pid)).toBe(true);
    await killAndWait(child, "SIGTERM");
    expect(await waitUntilDead(pid)).toBe(true);
  });

  it("a client killed with SIGKILL: its server notices and exits; gc clears the record", async () => {
    const { child, instanceId } = await startHoldingClient("process", examplePath("calculator"));
    const pid = Number(instanceId.replace("process-", ""));
    await killAndWait(child, "SIGKILL");
    expect(await waitUntilDead(pid)).toBe(true);
    const runtime = new ProcessRuntime();
    await runtime.garbageCollect();
    expect((await runtime.list()).map((i) => i.id)).not.toContain(instanceId);
  });

  it.skipIf(!fastapiPython)("serves an HTTP-based environment's own app", async () => {
    await using env = await loadEnv({
      envPath: examplePath("fastapi-env"),
      mode: "process",
      python: fastapiPython,
    });
    expect(env.envType).toBe("http_based");
    expect(await env.echo({ text: "x", times: 3 })).toEqual({ text: "x x x" });
  });

  it("a shell sandbox ends with its client, even when the client is SIGKILLed", async () => {
    const child = spawn(process.execPath, [`${fixturePath("")}hold-sandbox.mjs`], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    const id = await new Promise<string>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        const match = /READY (\S+)/.exec(out);
        if (match?.[1]) resolve(match[1]);
      });
      child.once("exit", () => reject(new Error(`client exited early: ${out}`)));
    });
    const pid = Number(id.replace("process-", ""));
    expect(processIsAlive(pid)).toBe(true);
    await killAndWait(child, "SIGKILL");
    expect(await waitUntilDead(pid)).toBe(true);
  });

  it("reports a missing interpreter clearly", async () => {
    await expect(
      loadEnv({ envPath: examplePath("calculator"), mode: "process", python: "/nonexistent/python3" }),
    ).rejects.toThrow(/cannot run \/nonexistent\/python3/);
  });
});
