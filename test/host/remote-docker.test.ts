import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostConnectionError, buildImageFromEnv, cleanupAllEnvironments, loadEnv } from "../../src/index.js";
import { Host as SshHost } from "../../src/host/host.js";
import { fixturePath } from "../helpers/paths.js";
import { afs } from "../helpers/afs.js";
import {
  engineOf,
  hasSshHosts,
  killSshd,
  remoteHosts,
  startDockerd,
  startSshd,
  stopDockerd,
} from "../helpers/ssh-hosts.js";
import { until } from "../helpers/until.js";

const image = "affinetes-test/pool-env:latest";
const [hostB, hostC] = remoteHosts;
const managed = { filters: { label: ["affinetes.managed=true", `affinetes.owner.pid=${process.pid}`] } };

/** Remote Docker hosts over SSH: one connection per host, tunnels, image shipping, failures. */
describe.skipIf(!hasSshHosts)("remote docker hosts", () => {
  beforeAll(async () => {
    await buildImageFromEnv({ envPath: fixturePath("pool-env"), imageTag: image, quiet: true });
  });

  afterAll(async () => {
    await cleanupAllEnvironments();
  });

  it("ships a missing image to a host, once, and runs a remote instance reached through a tunnel", async () => {
    await engineOf(hostC)
      .getImage(image)
      .remove({ force: true })
      .catch(() => undefined);
    await using env = await loadEnv({ image, hosts: [hostC.url] });
    expect(await env.add({ a: 1, b: 2 })).toBe(3);
    const [stats] = env.getStats().instances;
    expect(stats?.host).toBe(hostC.url);
    expect(stats?.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/); // the local end of the tunnel
    const shipped = await engineOf(hostC).getImage(image).inspect();
    const local = await new (await import("dockerode")).default().getImage(image).inspect();
    expect(shipped.Id).toBe(local.Id);
    // nothing is published on the remote host
    const info = await engineOf(hostC).getContainer(env.instanceId).inspect();
    expect(info.HostConfig.PortBindings ?? {}).toEqual({});
    expect(
      Object.values(info.NetworkSettings.Ports ?? {})
        .flat()
        .filter(Boolean),
    ).toEqual([]);
  });

  it("spreads local + two remote replicas round_robin: 30 calls, 10 per host; cleanup leaves nothing anywhere", async () => {
    const env = await loadEnv({
      image,
      replicas: 3,
      loadBalance: "round_robin",
      hosts: ["localhost", hostB.url, hostC.url],
    });
    for (let i = 0; i < 30; i++) await env.add({ a: i, b: 1 });
    const stats = env.getStats();
    expect(stats.instances.map((i) => i.host)).toEqual(["localhost", hostB.url, hostC.url]);
    expect(stats.instances.map((i) => i.requests)).toEqual([10, 10, 10]);
    await env.cleanup();
    for (const host of remoteHosts)
      expect(await engineOf(host).listContainers({ all: true, ...managed })).toEqual([]);
  });

  it("a dropped SSH connection: calls in flight fail typed, the pool reconnects and serves again", async () => {
    await using env = await loadEnv({ image, hosts: [hostB.url] });
    expect(await env.add({ a: 1, b: 1 })).toBe(2);
    const slow = env.slow({ seconds: 5 }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 300));
    killSshd(hostB);
    const inFlight = await slow;
    expect((inFlight as Error).name).toBe("ConnectionError");
    startSshd(hostB);
    expect(await until(() => env.getStats().healthyInstances === 1, 20_000)).toBe(true);
    expect(await env.add({ a: 2, b: 2 }, { timeoutMs: 20_000 })).toBe(4);
  });

  it("a stopped dockerd: its replica leaves the rotation and the others keep serving", async () => {
    const env = await loadEnv({
      image,
      replicas: 2,
      loadBalance: "round_robin",
      hosts: ["localhost", hostB.url],
    });
    try {
      stopDockerd(hostB);
      expect(await until(() => env.getStats().instances[1]?.healthy === false, 15_000)).toBe(true);
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => env.add({ a: i, b: 0 })));
      expect(results).toEqual(Array.from({ length: 10 }, (_, i) => i));
    } finally {
      startDockerd();
      await env.cleanup().catch(() => undefined);
      await env.stop().catch(() => undefined);
    }
    expect(await engineOf(hostB).listContainers({ all: true, ...managed })).toEqual([]);
  });

  it("afs run --host starts a remote environment that afs call, ls and stop reach by name", async () => {
    const name = `remote-cli-${process.pid}`;
    const run = await afs(["run", image, "--name", name, "--host", hostB.url]);
    expect(run.code, run.stderr).toBe(0);
    expect(
      JSON.parse(
        (await afs(["call", name, "add", "--arg", "a=2", "--arg", "b=3", "--host", hostB.url])).stdout,
      ),
    ).toBe(5);
    const ls = await afs(["ls", "--host", hostB.url]);
    expect(ls.stdout).toMatch(
      new RegExp(`${name}\\s+${name}\\s+docker\\s+${hostB.url.replace(/[/.]/g, "\\$&")}`),
    );
    const stop = await afs(["stop", name, "--host", hostB.url]);
    expect(stop.code, stop.stderr).toBe(0);
    expect(
      await engineOf(hostB).listContainers({ all: true, filters: { label: [`affinetes.pool=${name}`] } }),
    ).toEqual([]);
    const wrong = await afs(["ls", "--host", `ssh://nobody@${hostB.address}:2222`]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/nobody@127\.0\.0\.2:2222: authentication failed/);
  });

  it("a wrong user, port or host key fails clearly, naming the host and the cause", async () => {
    const wrongUser = await SshHost.connect(`ssh://nobody@${hostB.address}:2222`, {
      connectTimeoutMs: 5_000,
    }).catch((e: unknown) => e);
    expect(wrongUser).toBeInstanceOf(HostConnectionError);
    expect((wrongUser as Error).message).toMatch(/ssh:\/\/nobody@127\.0\.0\.2:2222: authentication failed/);
    const wrongPort = await SshHost.connect(`ssh://root@${hostB.address}:2299`).catch((e: unknown) => e);
    expect((wrongPort as Error).message).toMatch(/connection refused/);

    const knownHosts = join(mkdtempSync(join(tmpdir(), "affinetes-kh-")), "known_hosts");
    writeFileSync(knownHosts, "");
    const unknownKey = await SshHost.connect(hostB.url, { knownHostsFile: knownHosts }).catch(
      (e: unknown) => e,
    );
    expect((unknownKey as Error).message).toMatch(/host key unknown/);
    const accepted = await SshHost.connect(hostB.url, {
      knownHostsFile: knownHosts,
      acceptNewHostKeys: true,
    });
    accepted.close();
    expect(readFileSync(knownHosts, "utf8")).toMatch(/^\[127\.0\.0\.2\]:2222 ssh-ed25519 /);

    // A changed key is refused even with acceptNewHostKeys.
    const tampered = join(mkdtempSync(join(tmpdir(), "affinetes-kh-")), "known_hosts");
    copyFileSync(join(homedir(), ".ssh", "id_ed25519.pub"), tampered); // a different key
    const pub = readFileSync(tampered, "utf8").trim().split(" ");
    writeFileSync(tampered, `[127.0.0.2]:2222 ${pub[0]} ${pub[1]}\n`);
    const mismatch = await SshHost.connect(hostB.url, {
      knownHostsFile: tampered,
      acceptNewHostKeys: true,
    }).catch((e: unknown) => e);
    expect((mismatch as Error).message).toMatch(/host key differs/);
  });
});
