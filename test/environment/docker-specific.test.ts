import Docker from "dockerode";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BuildError,
  DockerRuntime,
  NotFoundError,
  buildImageFromEnv,
  cleanupAllEnvironments,
  loadEnv,
} from "../../src/index.js";
import { fastapiBaseImage, hasDocker, managedContainers } from "../helpers/docker.js";
import { killAndWait, startHoldingClient } from "../helpers/client-process.js";
import { examplePath } from "../helpers/paths.js";

const docker = new Docker();
const calculator = "affinetes-test/calculator:latest";
const fastapi = "affinetes-test/fastapi-env:latest";

describe.skipIf(!hasDocker)("docker environments", () => {
  beforeAll(async () => {
    await buildImageFromEnv({ envPath: examplePath("calculator"), imageTag: calculator, quiet: true });
  });

  afterAll(async () => {
    await cleanupAllEnvironments();
  });

  it("builds and calls an HTTP-based (FastAPI) environment with its own CMD", async () => {
    const lines: string[] = [];
    await buildImageFromEnv({
      envPath: examplePath("fastapi-env"),
      imageTag: fastapi,
      baseImage: fastapiBaseImage,
      quiet: true,
      onProgress: (line) => lines.push(line),
    });
    expect(lines.join("\n")).toMatch(/Successfully tagged|writing image|naming to/i);
    const image = await docker.getImage(fastapi).inspect();
    expect(image.Config.Labels?.["affinetes.env.type"]).toBe("http_based");
    await using env = await loadEnv({ image: fastapi });
    expect(env.envType).toBe("http_based");
    expect(await env.echo({ text: "hi", times: 2 })).toEqual({ text: "hi hi" });
    expect(await env.reverse({ text: "abc" })).toEqual({ text: "cba" });
    expect((await env.listMethods()).map((m) => m.name).sort()).toEqual(["echo", "reverse"]);
    await expect(env.echo({ times: 2 })).rejects.toMatchObject({
      name: "InvalidArgumentsError",
      status: 422,
    });
  });

  it("labels containers, applies memLimit and restart policy, and publishes no port", async () => {
    await using env = await loadEnv({ image: calculator, memLimit: "256m", envVars: { A: "1" } });
    const info = await docker.getContainer(env.instanceId).inspect();
    expect(info.Config.Labels).toMatchObject({
      "affinetes.managed": "true",
      "affinetes.env.name": "calculator",
      "affinetes.env.type": "function_based",
      "affinetes.owner.pid": String(process.pid),
      "affinetes.keep": "false",
    });
    expect(info.HostConfig.Memory).toBe(256 * 1024 * 1024);
    expect(info.HostConfig.RestartPolicy?.Name).toBe("always");
    expect(info.HostConfig.PortBindings ?? {}).toEqual({});
    expect(info.Config.Env).toContain("A=1");
    expect(env.endpoint).toMatch(/^http:\/\/\d+\.\d+\.\d+\.\d+:8000$/);
  });

  it("can reach containers through a port published on 127.0.0.1 only", async () => {
    const runtime = new DockerRuntime({ address: "published" });
    await using instance = await runtime.start({ envName: "calculator", image: calculator });
    expect(instance.endpoint()).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const info = await docker.getContainer(instance.id).inspect();
    expect(info.HostConfig.PortBindings?.["8000/tcp"]?.[0]?.HostIp).toBe("127.0.0.1");
  });

  it("loads an env folder directly: built into an image, then run", async () => {
    await using env = await loadEnv({ envPath: examplePath("calculator"), mode: "docker" });
    expect(env.mode).toBe("docker");
    expect(await env.add({ a: 20, b: 22 })).toBe(42);
  });

  it("honours .dockerignore and reports build failures with the build output", async () => {
    const dir = mkdtempSync(join(tmpdir(), "affinetes-build-"));
    writeFileSync(
      join(dir, "env.py"),
      "import os\ndef files():\n    return sorted(f for f in os.listdir('/app') if f != '__pycache__')\n",
    );
    writeFileSync(join(dir, "secret.txt"), "do not ship");
    writeFileSync(join(dir, ".dockerignore"), "secret.txt\n");
    const tag = `affinetes-test/ignore:${process.pid}`;
    await buildImageFromEnv({ envPath: dir, imageTag: tag, quiet: true });
    await using env = await loadEnv({ image: tag });
    expect(await env.files()).toEqual([".dockerignore", "env.py"]);
    await env.cleanup();
    // one image per run would pile up: remove it (its base stage stays, shared by the runs)
    await new Docker().getImage(tag).remove({ force: true });

    writeFileSync(
      join(dir, "Dockerfile"),
      "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo failing-step && exit 7\n",
    );
    const error = await buildImageFromEnv({ envPath: dir, imageTag: tag, quiet: true }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BuildError);
    expect((error as BuildError).log).toMatch(/failing-step/);
  });

  it("a missing image is NotFoundError; pull falls back to the local image", async () => {
    await expect(loadEnv({ image: "affinetes-test/does-not-exist:1" })).rejects.toBeInstanceOf(NotFoundError);
    // No registry is reachable here: the pull fails, and the local image is used.
    await using env = await loadEnv({ image: calculator, pull: true });
    expect(await env.add({ a: 1, b: 1 })).toBe(2);
  });

  it("a client killed with SIGTERM leaves no container behind", async () => {
    const { child, instanceId } = await startHoldingClient("docker", calculator);
    expect((await managedContainers(child.pid)).map((c) => c.Id)).toContain(instanceId);
    const exit = await killAndWait(child, "SIGTERM");
    expect(exit.signal).toBe("SIGTERM");
    expect(await managedContainers(child.pid)).toEqual([]);
  });

  it("a client killed with SIGKILL leaves a container that garbage collection removes", async () => {
    const { child, instanceId } = await startHoldingClient("docker", calculator);
    await killAndWait(child, "SIGKILL");
    expect((await managedContainers(child.pid)).map((c) => c.Id)).toContain(instanceId);
    const removed = await new DockerRuntime().garbageCollect();
    expect(removed.length).toBeGreaterThanOrEqual(1);
    expect(await managedContainers(child.pid)).toEqual([]);
  });
});
