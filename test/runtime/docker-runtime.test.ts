import { lookup } from "node:dns/promises";
import { hostname } from "node:os";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerRuntime, buildImageFromEnv } from "../../src/index.js";
import { hasDocker } from "../helpers/docker.js";
import { examplePath, fixturePath } from "../helpers/paths.js";
import { runtimeConformance } from "./conformance.js";

const image = "affinetes-test/calculator:latest";
const broken = "affinetes-test/broken:latest";

describe.skipIf(!hasDocker)("docker runtime", () => {
  runtimeConformance({
    name: "docker",
    runtime: async () => {
      await buildImageFromEnv({ envPath: examplePath("calculator"), imageTag: image, quiet: true });
      await buildImageFromEnv({ envPath: fixturePath("broken-env"), imageTag: broken, quiet: true });
      return new DockerRuntime();
    },
    spec: (overrides) => ({ envName: "calculator", image, ...overrides }),
    brokenSpec: () => ({ envName: "broken", image: broken }),
    sandboxSpec: (workdir) => ({ envName: "sandbox", image, serve: false, workdir }),
    sandboxWorkdir: () => "/tmp",
  });
});

describe.skipIf(!hasDocker)("docker runtime: network policy", () => {
  const runtime = new DockerRuntime();
  const docker = new Docker();

  beforeAll(async () => {
    await buildImageFromEnv({ envPath: examplePath("calculator"), imageTag: image, quiet: true });
  });

  afterAll(async () => {
    await runtime.close();
  });

  it('a "none" sandbox is created off every network for good; a serving one joins the bridge behind rules', async () => {
    await using sealed = await runtime.start({ envName: "sealed", image, serve: false, network: "none" });
    const info = await docker.getContainer(sealed.id).inspect();
    expect(info.HostConfig.NetworkMode).toBe("none");
    expect(Object.keys(info.NetworkSettings.Networks ?? {})).toEqual(["none"]);
    expect(info.HostConfig.CapDrop).toContain("NET_RAW");
    await using serving = await runtime.start({ envName: "serving", image, network: "none" });
    const served = await docker.getContainer(serving.id).inspect();
    expect(Object.keys(served.NetworkSettings.Networks ?? {})).toEqual(["bridge"]);
    expect(served.HostConfig.RestartPolicy?.Name).toBe("no");
  });

  it("adopts a container by name only under the same policy; another policy recreates it", async () => {
    const name = `policy-adopt-${process.pid}`;
    const first = await runtime.start({ envName: "adopt", name, image, serve: false, network: "none" });
    try {
      const again = await runtime.start({ envName: "adopt", name, image, serve: false, network: "none" });
      expect(again.reused).toBe(true);
      expect(again.id).toBe(first.id);
      await again.detach();
      const other = await runtime.start({
        envName: "adopt",
        name,
        image,
        serve: false,
        network: { allow: ["10.0.0.1:443"] },
      });
      expect(other.reused).toBe(false);
      expect(other.id).not.toBe(first.id);
      await other.stop();
    } finally {
      await first.stop();
    }
  });

  it("an allowlist's names are in the sandbox's /etc/hosts, with the addresses they resolved to at start", async () => {
    const name = hostname(); // a name this machine resolves (the container knows only its own)
    const { address } = await lookup(name, { family: 4 });
    await using sandbox = await runtime.start({
      envName: "hosts",
      image,
      serve: false,
      network: { allow: [`${name}:9`] },
    });
    const hosts = (await sandbox.exec("cat /etc/hosts")).stdout;
    expect(hosts.split("\n")).toContain(`${address}\t${name}`);
  });
});
