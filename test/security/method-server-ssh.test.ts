import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImageFromEnv, cleanupAllEnvironments, loadEnv } from "../../src/index.js";
import { deployHosts, hasDeployHosts } from "../helpers/deploy-hosts.js";
import { hasDocker } from "../helpers/docker.js";
import type { TokenEnv } from "./method-server-suite.js";
import {
  attackFromContainer,
  attackerRequest,
  refusedEverywhere,
  tokenEnvPath,
  tokenImage,
} from "./method-server-suite.js";

/** Host c: its sshd is one no other test kills. */
const host = deployHosts[0];

/**
 * Through an SSH host: the owner's calls carry the token through the tunnel, and what
 * reaches the container without it (the tunnel's local end, another container on that
 * host's bridge) is refused.
 */
describe.skipIf(!hasDocker || !hasDeployHosts)("method server attacks: docker on an SSH host", () => {
  const remote = new Docker({ socketPath: host.socket });

  beforeAll(async () => {
    await buildImageFromEnv({ envPath: tokenEnvPath, imageTag: tokenImage, quiet: true });
  });

  afterAll(async () => {
    await cleanupAllEnvironments();
    await remote
      .getImage(tokenImage)
      .remove({ force: true })
      .catch(() => undefined);
  });

  it("the token travels through the tunnel; without it, the tunnel and the remote bridge get 401", async () => {
    await using env = (await loadEnv({ image: tokenImage, hosts: [host.url] })) as TokenEnv;
    const token = env.instances[0]?.authToken as string;
    expect(env.instances[0]?.host).toBe(host.url);
    expect(await env.add({ a: 20, b: 22 })).toBe(42);
    // the tunnel's local end: whoever reaches it without the token is refused
    expect(env.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const call = '{"method":"add","args":[1,2]}';
    expect((await attackerRequest(env.endpoint, "POST", "/call", {}, call)).status).toBe(401);
    expect(
      await attackerRequest(env.endpoint, "POST", "/call", { authorization: `Bearer ${token}` }, call),
    ).toMatchObject({ status: 200, body: { result: 3 } });
    // another container on the remote host's bridge, by the container's bridge address there
    const info = await remote.getContainer(env.instanceId).inspect();
    const ip = Object.values(info.NetworkSettings.Networks).find((n) => n.IPAddress)?.IPAddress;
    expect(ip).toBeTruthy();
    expect(await attackFromContainer(remote, tokenImage, `http://${ip}:8000`)).toEqual(refusedEverywhere);
  });
});
