import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { App } from "../../src/index.js";
import type { ContainerOptions } from "../../src/index.js";
import { hasDocker, testBaseImage } from "../helpers/docker.js";
import { DOCKER_GATEWAY, HttpTestServers } from "../helpers/net-probe.js";
import type { ControlService } from "../helpers/control-service.js";
import { controlKeys, serveControl } from "../helpers/control-service.js";

/**
 * Containers and functions of the control plane under a network policy: the service's
 * default (`--default-network none`), or the request's own. The policy is recorded with
 * the container and held by the docker runtime; test servers listen on the bridge gateway.
 */
describe.skipIf(!hasDocker)("control plane: network policy of containers and functions", () => {
  let control: ControlService;
  const servers = new HttpTestServers();
  const probe = (port: number) => servers.probe(port);
  let port = 0;
  let otherPort = 0;

  beforeAll(async () => {
    port = await servers.listen();
    otherPort = await servers.listen();
    control = await serveControl("--default-network", "none");
  });

  afterAll(async () => {
    await servers[Symbol.asyncDispose]();
    await control?.[Symbol.asyncDispose]();
  });

  async function output(
    options: Omit<ContainerOptions, "image">,
  ): Promise<{ out: string; network: unknown }> {
    const c = await control.clients.alice.containers.create({ image: testBaseImage, ...options });
    await c.wait();
    const out = (await c.logs()).trim();
    const network = c.info.network;
    await c.delete();
    return { out, network };
  }

  it("a bad policy is refused (400) before anything is created", async () => {
    for (const network of ["partial", { allow: "10.0.0.1" }, { allow: ["not a host!"] }, { block: [] }, 5]) {
      const res = await control.raw("alice", "POST", "/v1/containers", {
        body: JSON.stringify({ image: testBaseImage, command: "true", network }),
        contentType: "application/json",
      });
      expect(res.status, JSON.stringify(network)).toBe(400);
      expect(res.body).toMatchObject({
        error: { code: "VALIDATION", message: expect.stringMatching(/network/) },
      });
    }
    expect(await control.clients.alice.containers.list()).toEqual([]);
  });

  it('the service default "none" reaches nothing; the engine holds it (NetworkMode none)', async () => {
    const c = await control.clients.alice.containers.create({ image: testBaseImage, command: "sleep 30" });
    try {
      expect(c.info.network).toBe("none");
      const [engine] = await new Docker().listContainers({
        filters: { label: [`affinetes.control.container=${c.id}`] },
      });
      const inspect = await new Docker().getContainer(engine!.Id).inspect();
      expect(inspect.HostConfig.NetworkMode).toBe("none");
    } finally {
      await c.delete();
    }
    expect(await output({ command: probe(port) })).toEqual({ out: "unreachable", network: "none" });
  });

  it('"full" reaches the server; an allowlist reaches its destination and not another port', async () => {
    expect((await output({ command: probe(port), network: "full" })).out).toBe("reached");
    const allow = { allow: [`${DOCKER_GATEWAY}:${port}`] };
    expect(await output({ command: probe(port), network: allow })).toEqual({
      out: "reached",
      network: allow,
    });
    expect((await output({ command: probe(otherPort), network: allow })).out).toBe("unreachable");
  });

  it("app.function({ network }) runs its containers under that policy", async () => {
    await using app = new App({ name: "net", url: control.url, apiKey: controlKeys.alice });
    const url = `http://${DOCKER_GATEWAY}:${port}/`;
    const fetch = (network?: ContainerOptions["network"]) =>
      app
        .function<{ url: string }, string>(
          { image: testBaseImage, ...(network ? { network } : {}) },
          "test/fixtures/functions/net.py:fetch",
        )
        .remote({ url });
    expect(await fetch()).toMatch(/^unreachable/); // the service default
    expect(await fetch({ allow: [`${DOCKER_GATEWAY}:${port}`] })).toBe("reached");
    expect(await fetch({ allow: [`${DOCKER_GATEWAY}:${otherPort}`] })).toMatch(/^unreachable/);
  });
});
