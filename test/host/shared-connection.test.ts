/**
 * Issue 15, step 4: everything that uses an SSH host in one process shares one connection,
 * taken from the registry: a deploy (commands, SFTP, tar pipes) and a `loadEnv` (the Docker
 * API over dial-stdio channels, the tunnel to the replica) to the same host hold one, and
 * it closes when the last of them lets go.
 */
import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deployProject, runInProject } from "../../src/deploy/index.js";
import { sharedConnections } from "../../src/host/host-registry.js";
import { Host, buildImageFromEnv, loadEnv } from "../../src/index.js";
import { deployHosts, hasDeployHosts, ownConnections } from "../helpers/deploy-hosts.js";
import { hasDocker } from "../helpers/docker.js";
import { examplePath, fixturePath } from "../helpers/paths.js";
import { until } from "../helpers/until.js";

const target = deployHosts[0]; // c: an sshd no test kills
const image = "affinetes-test/calculator:latest";

describe.skipIf(!hasDocker || !hasDeployHosts)("one SSH connection per host", () => {
  const id = randomBytes(4).toString("hex");
  const root = `/tmp/affinetes-test-shared-${id}`; // the hosts are this machine
  const local = mkdtempSync(join(tmpdir(), "affinetes-test-shared-"));

  beforeAll(async () => {
    await buildImageFromEnv({ envPath: examplePath("calculator"), imageTag: image, quiet: true });
  }, 300_000);

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(local, { recursive: true, force: true });
  });

  it("a deploy and a loadEnv to the same host hold one connection, closed with the last user", async () => {
    expect(ownConnections(target.address)).toEqual([]);
    const host = await Host.connect(target.url);
    const env = await loadEnv({ image, hosts: [target.url] });
    try {
      expect(await env.add({ a: 20, b: 22 })).toBe(42); // through the tunnel
      const localPath = join(local, `none-${id}`);
      cpSync(fixturePath("deploy/none"), localPath, { recursive: true });
      const ws = await deployProject(host, { localPath, root, backend: "none" });
      expect((await runInProject(host, ws, "echo deployed")).stdout).toBe("deployed\n");
      expect(await host.readFile(`${ws.path}/hello.sh`)).toBeInstanceOf(Buffer); // SFTP
      expect(ownConnections(target.address)).toHaveLength(1);
      expect(sharedConnections.size).toBe(1);
    } finally {
      host.close();
      await env.cleanup();
    }
    expect(sharedConnections.size).toBe(0);
    expect(await until(() => ownConnections(target.address).length === 0, 5_000)).toBe(true);
  }, 300_000);
});

describe.skipIf(!hasDeployHosts)("sessions past the server's MaxSessions", () => {
  it("25 commands at once on one host all run (OpenSSH takes 10 sessions a connection); extra connections close once idle", async () => {
    const host = await Host.connect(target.url);
    try {
      const results = await Promise.all(
        Array.from({ length: 25 }, (_, i) => host.exec(`sleep 1; echo ${i}`, { timeoutMs: 30_000 })),
      );
      expect(results.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 25 }, (_, i) => String(i)));
      expect(ownConnections(target.address).length).toBeGreaterThan(1); // spread over more than one
      // the extra ones go once idle; the host's own stays
      expect(await until(() => ownConnections(target.address).length === 1, 15_000)).toBe(true);
    } finally {
      host.close();
    }
    expect(await until(() => ownConnections(target.address).length === 0, 5_000)).toBe(true);
  }, 60_000);
});
