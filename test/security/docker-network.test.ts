/**
 * Network policy of Docker instances, tried as the code inside them would: every target
 * is a server this test starts itself on this machine (on a bridge's gateway address) or
 * another container on the same bridge.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DockerRuntime,
  SlurmRuntime,
  buildImageFromEnv,
  cleanupAllEnvironments,
  loadEnv,
} from "../../src/index.js";
import type { Instance } from "../../src/index.js";
import type { DockerInstance } from "../../src/runtime/docker/docker-instance.js";
import { afs } from "../helpers/afs.js";
import { deployHosts, hasDeployHosts } from "../helpers/deploy-hosts.js";
import { hasDocker, testBaseImage } from "../helpers/docker.js";
import type { TestServer } from "../helpers/net-probe.js";
import {
  CAP_NET_ADMIN,
  CAP_NET_RAW,
  bridgeAddress,
  hasCapability,
  probe,
  probeCommand,
  startTestServer,
} from "../helpers/net-probe.js";
import { fixturePath } from "../helpers/paths.js";
import { hasSlurm } from "../helpers/slurm.js";
import { until } from "../helpers/until.js";

const image = "affinetes-test/net-env:latest";
const docker = new Docker();
const REFUSED = /^ConnectionRefusedError/;
const UNREACHABLE = /^OSError: \[Errno 101\] Network is unreachable/;

/** The address of a container on its engine's bridge. */
async function bridgeIp(engine: Docker, id: string): Promise<string> {
  const info = await engine.getContainer(id).inspect();
  const ip = info.NetworkSettings.Networks?.bridge?.IPAddress;
  if (!ip) throw new Error(`container ${id} is not on the bridge`);
  return ip;
}

/** Two servers on a bridge's gateway: one the sandboxes may reach, one on another port they may not. */
async function gatewayServers(
  bridge: string,
): Promise<{ gateway: string; allowed: TestServer; other: TestServer }> {
  const gateway = bridgeAddress(bridge);
  return { gateway, allowed: await startTestServer(gateway), other: await startTestServer(gateway) };
}

describe.skipIf(!hasDocker)("network policy: local Docker engine", () => {
  const runtime = new DockerRuntime();
  let servers: Awaited<ReturnType<typeof gatewayServers>>;
  let neighbour: Instance; // a serving container with the default policy, on the same bridge
  let neighbourIp: string;

  beforeAll(async () => {
    await buildImageFromEnv({ envPath: fixturePath("net-env"), imageTag: image, quiet: true });
    servers = await gatewayServers("docker0");
    neighbour = await runtime.start({ envName: "net-neighbour", image });
    neighbourIp = await bridgeIp(docker, neighbour.id);
  });

  afterAll(async () => {
    await neighbour?.stop();
    await servers?.allowed[Symbol.asyncDispose]();
    await servers?.other[Symbol.asyncDispose]();
    await cleanupAllEnvironments();
    await runtime.close();
  });

  it("without a policy (the control), a sandbox reaches both servers and its neighbour", async () => {
    const { gateway, allowed, other } = servers;
    await using open = await runtime.start({ envName: "net-full", image: testBaseImage, serve: false });
    expect(await probe(open, gateway, allowed.port)).toBe(allowed.greeting);
    expect(await probe(open, gateway, other.port)).toBe(other.greeting);
    expect(await probe(open, neighbourIp, 8000)).toBe("connected:");
  });

  it("an allowlisted sandbox reaches the allowed server, not a second one on another port, nor its neighbour", async () => {
    const { gateway, allowed, other } = servers;
    await using sandbox = await runtime.start({
      envName: "net-allow",
      image: testBaseImage,
      serve: false,
      network: { allow: [`${gateway}:${allowed.port}`] },
    });
    expect(await probe(sandbox, gateway, allowed.port)).toBe(allowed.greeting);
    expect(await probe(sandbox, gateway, other.port)).toMatch(REFUSED);
    expect(await probe(sandbox, neighbourIp, 8000)).toMatch(REFUSED);
  });

  it('a "none" sandbox reaches nothing: neither the bridge gateway nor another container', async () => {
    const { gateway, allowed, other } = servers;
    await using sandbox = await runtime.start({
      envName: "net-none",
      image: testBaseImage,
      serve: false,
      network: "none",
    });
    for (const [host, port] of [
      [gateway, allowed.port],
      [gateway, other.port],
      [neighbourIp, 8000],
    ] as const)
      expect(await probe(sandbox, host, port)).toMatch(UNREACHABLE);
    // loopback is all it has
    const devices = (await sandbox.exec("tail -n +3 /proc/net/dev | cut -d: -f1")).stdout.trim();
    expect(devices.split(/\s+/)).toEqual(["lo"]);
  });

  it('a serving environment with "none" answers its client, its code cannot connect out, and its neighbours cannot call it', async () => {
    const { gateway, allowed } = servers;
    await using env = await loadEnv({ image, network: "none" });
    expect(await env.add({ a: 2, b: 3 })).toBe(5);
    expect(await env.connect({ host: gateway, port: allowed.port })).toMatch(REFUSED);
    expect(await env.connect({ host: neighbourIp, port: 8000 })).toMatch(REFUSED);
    // a container on the same bridge gets no answer from its server port
    const envIp = await bridgeIp(docker, env.instanceId);
    await using other = await runtime.start({ envName: "net-caller", image: testBaseImage, serve: false });
    expect(await probe(other, envIp, 8000, 2)).toMatch(/^TimeoutError/);
    expect(await probe(other, neighbourIp, 8000)).toBe("connected:"); // while it reaches a default one
  });

  it('a "none" environment reached through a port published on 127.0.0.1 answers too', async () => {
    const published = new DockerRuntime({ address: "published" });
    try {
      await using instance = await published.start({ envName: "net-published", image, network: "none" });
      expect(instance.endpoint()).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await request(`${instance.endpoint()}/call`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          method: "connect",
          args: [],
          kwargs: { host: servers.gateway, port: servers.allowed.port },
        }),
      });
      expect(await res.body.json()).toMatchObject({
        status: "success",
        result: expect.stringMatching(REFUSED),
      });
    } finally {
      await published.close();
    }
  });

  it("the sandbox cannot lift its rules: no NET_ADMIN, no NET_RAW, and egress stays refused after trying", async () => {
    const { gateway, allowed, other } = servers;
    await using sandbox = await runtime.start({
      envName: "net-lift",
      image: testBaseImage,
      serve: false,
      network: { allow: [`${gateway}:${allowed.port}`] },
    });
    const status = (await sandbox.exec("cat /proc/self/status")).stdout;
    expect(hasCapability(status, CAP_NET_ADMIN)).toBe(false);
    expect(hasCapability(status, CAP_NET_RAW)).toBe(false);
    // the image has no iptables: bring the attempt with the kernel's own interface
    const flush = await sandbox.exec(
      "iptables -P OUTPUT ACCEPT; iptables -F; " +
        `python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 255)'`,
    );
    expect(flush.exitCode).not.toBe(0);
    expect(flush.stderr).toMatch(/PermissionError|Operation not permitted/);
    // a packet socket would send frames past the rules: refused
    const packet = await sandbox.exec(
      `python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)'`,
    );
    expect(packet.stderr).toMatch(/PermissionError/);
    expect(await probe(sandbox, gateway, other.port)).toMatch(REFUSED);
    expect(await probe(sandbox, gateway, allowed.port)).toBe(allowed.greeting);
  });

  it("after a crash and revive, the rules still hold (the engine itself never restarts it without them)", async () => {
    const { gateway, allowed, other } = servers;
    await using sandbox = await runtime.start({
      envName: "net-revive",
      image: testBaseImage,
      serve: false,
      network: { allow: [`${gateway}:${allowed.port}`] },
    });
    const info = await docker.getContainer(sandbox.id).inspect();
    expect(info.HostConfig.RestartPolicy?.Name).toBe("no");
    process.kill(info.State.Pid, "SIGKILL"); // its main process dies, as in a crash
    expect(await until(async () => !(await sandbox.isRunning()), 10_000)).toBe(true);
    expect(await sandbox.revive()).toBe(true);
    expect(await probe(sandbox, gateway, other.port)).toMatch(REFUSED);
    expect(await probe(sandbox, gateway, allowed.port)).toBe(allowed.greeting);
  });

  it("a replica killed under a policy is revived by its pool with the rules in place", async () => {
    const { gateway, allowed } = servers;
    await using env = await loadEnv({ image, network: { allow: [`${gateway}:${allowed.port}`] } });
    expect(await env.connect({ host: gateway, port: allowed.port })).toBe(allowed.greeting);
    const id = env.instanceId;
    // its main process dies, as in a crash or an OOM kill
    process.kill((await docker.getContainer(id).inspect()).State.Pid, "SIGKILL");
    const answers = async () => (await env.add({ a: 1, b: 1 }, { timeoutMs: 2_000 }).catch(() => 0)) === 2;
    expect(await until(answers, 30_000)).toBe(true);
    expect((await docker.getContainer(id).inspect()).State.Running).toBe(true);
    expect(await env.connect({ host: gateway, port: servers.other.port })).toMatch(REFUSED);
    expect(await env.connect({ host: neighbourIp, port: 8000 })).toMatch(REFUSED);
    expect(await env.connect({ host: gateway, port: allowed.port })).toBe(allowed.greeting);
  });

  it("a task under an allowlist runs once its network is there: its first connection reaches the allowed server", async () => {
    const { gateway, allowed, other } = servers;
    const task = (await runtime.start({
      envName: "net-task",
      image: testBaseImage,
      serve: false,
      task: { command: `${probeCommand(gateway, allowed.port)}; ${probeCommand(gateway, other.port)}` },
      network: { allow: [`${gateway}:${allowed.port}`] },
    })) as DockerInstance;
    try {
      expect(await task.wait()).toBe(0);
      const lines = (await task.logs()).trim().split("\n");
      expect(lines[0]).toBe(allowed.greeting);
      expect(lines[1]).toMatch(REFUSED);
    } finally {
      await task.stop();
    }
  });

  it("afs run --network holds the allowlist for what it starts", async () => {
    const { gateway, allowed, other } = servers;
    const name = `net-cli-${process.pid}`;
    const run = await afs([
      "run",
      image,
      "--name",
      name,
      "--network",
      `${gateway}:${allowed.port}`,
      "--json",
    ]);
    expect(run.code, run.stderr).toBe(0);
    try {
      const call = async (port: number) =>
        JSON.parse(
          (await afs(["call", name, "connect", "--arg", `host=${gateway}`, "--arg", `port=${port}`])).stdout,
        ) as string;
      expect(await call(allowed.port)).toBe(allowed.greeting);
      expect(await call(other.port)).toMatch(REFUSED);
    } finally {
      await afs(["stop", name]);
    }
    const bad = await afs(["run", image, "--name", `${name}-bad`, "--network", "10.0.0.300"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/network/);
  });

  it("a host without nsenter refuses a policy with a clear RuntimeUnavailableError, and leaves no container", async () => {
    // a PATH holding sh and id only: the rules' tools are not found
    const bin = mkdtempSync(join(tmpdir(), "affinetes-nobin-"));
    symlinkSync("/bin/sh", join(bin, "sh"));
    symlinkSync("/usr/bin/id", join(bin, "id"));
    const path = process.env.PATH;
    process.env.PATH = bin;
    const name = `net-missing-${process.pid}`;
    try {
      await expect(
        runtime.start({
          envName: "net-missing",
          name,
          image: testBaseImage,
          serve: false,
          network: "none",
          ports: [9000],
        }),
      ).rejects.toMatchObject({
        code: "RUNTIME_UNAVAILABLE",
        message: expect.stringMatching(/nsenter is missing/),
      });
    } finally {
      process.env.PATH = path;
      rmSync(bin, { recursive: true, force: true });
    }
    expect(await docker.listContainers({ all: true, filters: { name: [name] } })).toEqual([]);
  });

  it("an engine reached over tcp cannot hold a policy: refused before anything is created", async () => {
    const tcp = new DockerRuntime({ connection: { host: "127.0.0.1", port: 1, protocol: "http" } });
    await expect(
      tcp.start({ envName: "net-tcp", image: testBaseImage, serve: false, network: { allow: ["10.0.0.1"] } }),
    ).rejects.toMatchObject({ code: "RUNTIME_UNAVAILABLE", message: expect.stringMatching(/tcp engine/) });
    await tcp.close();
  });

  it("a bad policy is a validation error naming the option", async () => {
    await expect(loadEnv({ image, network: "open" as never })).rejects.toMatchObject({
      code: "VALIDATION",
      message: expect.stringMatching(/network/),
    });
    await expect(loadEnv({ image, network: { allow: ["no-such-host.invalid"] } })).rejects.toMatchObject({
      code: "VALIDATION",
    });
  });
});

describe.skipIf(!hasDocker || !hasDeployHosts)("network policy: SSH Docker host c", () => {
  const host = deployHosts[0];
  const runtime = new DockerRuntime({ connection: { ssh: host.url } });
  let servers: Awaited<ReturnType<typeof gatewayServers>>;

  beforeAll(async () => {
    await buildImageFromEnv({ envPath: fixturePath("net-env"), imageTag: image, quiet: true });
    servers = await gatewayServers("br-hostc");
  });

  afterAll(async () => {
    await servers?.allowed[Symbol.asyncDispose]();
    await servers?.other[Symbol.asyncDispose]();
    await cleanupAllEnvironments();
    await runtime.close();
  });

  it("an allowlisted sandbox on c reaches the allowed server and not a second one on another port", async () => {
    const { gateway, allowed, other } = servers;
    await using sandbox = await runtime.start({
      envName: "net-allow-c",
      image,
      serve: false,
      network: { allow: [`${gateway}:${allowed.port}`] },
    });
    expect(await probe(sandbox, gateway, allowed.port)).toBe(allowed.greeting);
    expect(await probe(sandbox, gateway, other.port)).toMatch(REFUSED);
    await using open = await runtime.start({ envName: "net-full-c", image, serve: false });
    expect(await probe(open, gateway, other.port)).toBe(other.greeting); // the control
  });

  it('a "none" environment on c answers through its tunnel, and its code cannot connect out', async () => {
    const { gateway, allowed } = servers;
    await using env = await loadEnv({ image, hosts: [host.url], network: "none" });
    expect(await env.add({ a: 2, b: 3 })).toBe(5);
    expect(await env.connect({ host: gateway, port: allowed.port })).toMatch(REFUSED);
  });

  it("after a crash and revive on c, the rules still hold", async () => {
    const { gateway, allowed, other } = servers;
    await using sandbox = await runtime.start({
      envName: "net-revive-c",
      image,
      serve: false,
      network: { allow: [`${gateway}:${allowed.port}`] },
    });
    await new Docker({ socketPath: host.socket }).getContainer(sandbox.id).kill();
    expect(await until(async () => !(await sandbox.isRunning()), 10_000)).toBe(true);
    expect(await sandbox.revive()).toBe(true);
    expect(await probe(sandbox, gateway, other.port)).toMatch(REFUSED);
    expect(await probe(sandbox, gateway, allowed.port)).toBe(allowed.greeting);
  });
});

describe.skipIf(!hasDocker || !hasSlurm)("network policy: Docker containers in Slurm jobs", () => {
  const runtime = new SlurmRuntime({ container: "docker", sbatchArgs: ["--time=5"] });
  let servers: Awaited<ReturnType<typeof gatewayServers>>;

  beforeAll(async () => {
    await buildImageFromEnv({ envPath: fixturePath("net-env"), imageTag: image, quiet: true });
    servers = await gatewayServers("docker0");
  });

  afterAll(async () => {
    await servers?.allowed[Symbol.asyncDispose]();
    await servers?.other[Symbol.asyncDispose]();
  });

  it("an allowlisted sandbox in a job reaches the allowed server and not a second one on another port", async () => {
    const { gateway, allowed, other } = servers;
    await using sandbox = await runtime.start({
      envName: "net-allow-slurm",
      image,
      serve: false,
      network: { allow: [`${gateway}:${allowed.port}`] },
    });
    expect(await probe(sandbox, gateway, allowed.port)).toBe(allowed.greeting);
    expect(await probe(sandbox, gateway, other.port)).toMatch(REFUSED);
    const status = (await sandbox.exec("cat /proc/self/status")).stdout;
    expect(hasCapability(status, CAP_NET_RAW)).toBe(false);
  });

  it("a node without nsenter refuses a policy with a clear RuntimeUnavailableError, and leaves no job", async () => {
    // the job inherits this PATH (sbatch --export=ALL): the client commands and sh only
    const bin = mkdtempSync(join(tmpdir(), "affinetes-nobin-"));
    for (const tool of ["sh", "id", "sbatch", "squeue", "srun", "scancel", "scontrol"])
      symlinkSync(
        execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).trim(),
        join(bin, tool),
      );
    const path = process.env.PATH;
    process.env.PATH = bin;
    try {
      await expect(
        runtime.start({
          envName: "net-missing-slurm",
          image,
          serve: false,
          network: { allow: ["10.0.0.1"] },
        }),
      ).rejects.toMatchObject({
        code: "RUNTIME_UNAVAILABLE",
        message: expect.stringMatching(/nsenter is missing/),
      });
    } finally {
      process.env.PATH = path;
      rmSync(bin, { recursive: true, force: true });
    }
    expect((await runtime.list()).filter((i) => i.envName === "net-missing-slurm")).toEqual([]);
  });

  it('a "none" environment in a job answers its client, and its code cannot connect out', async () => {
    const { gateway, allowed } = servers;
    await using instance = await runtime.start({ envName: "net-none-slurm", image, network: "none" });
    const call = async (method: string, kwargs: object) => {
      const res = await request(`${instance.endpoint()}/call`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ method, args: [], kwargs }),
      });
      return ((await res.body.json()) as { result: unknown }).result;
    };
    expect(await call("add", { a: 2, b: 3 })).toBe(5);
    expect(await call("connect", { host: gateway, port: allowed.port })).toMatch(REFUSED);
  });
});
