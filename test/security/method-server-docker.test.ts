import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImageFromEnv, cleanupAllEnvironments, loadEnv } from "../../src/index.js";
import { hasDocker } from "../helpers/docker.js";
import type { TokenEnv } from "./method-server-suite.js";
import {
  attackFromContainer,
  methodServerAttacks,
  refusedEverywhere,
  tokenEnvPath,
  tokenImage,
} from "./method-server-suite.js";

describe.skipIf(!hasDocker)("method server attacks: docker (local engine)", () => {
  const docker = new Docker();

  beforeAll(async () => {
    await buildImageFromEnv({ envPath: tokenEnvPath, imageTag: tokenImage, quiet: true });
  });

  afterAll(async () => {
    await cleanupAllEnvironments();
  });

  it("a second container on the same bridge calls the method server by its bridge address: 401 without the token and with a wrong one", async () => {
    await using env = (await loadEnv({ image: tokenImage })) as TokenEnv;
    expect(env.endpoint).toMatch(/^http:\/\/\d+\.\d+\.\d+\.\d+:8000$/); // the bridge address
    expect(await attackFromContainer(docker, tokenImage, env.endpoint)).toEqual(refusedEverywhere);
    expect(await env.add({ a: 1, b: 2 })).toBe(3); // the owner
  });

  it("keeps the token in the container's own configuration: not in a label, not in the image, not in env.py's environment", async () => {
    await using env = (await loadEnv({ image: tokenImage })) as TokenEnv;
    const token = env.instances[0]?.authToken as string;
    const info = await docker.getContainer(env.instanceId).inspect();
    expect(info.Config.Env).toContain(`AFFINETES_AUTH_TOKEN=${token}`);
    expect(JSON.stringify(info.Config.Labels)).not.toContain(token);
    expect(JSON.stringify((await docker.getImage(tokenImage).inspect()).Config)).not.toContain(token);
    expect(await env.token_in_environment()).toEqual({ own: null, child: "" });
  });

  methodServerAttacks(
    async (envVars) => (await loadEnv({ image: tokenImage, ...(envVars ? { envVars } : {}) })) as TokenEnv,
  );
});
