import type Docker from "dockerode";
import { SERVER_PORT } from "../../config.js";
import type { OperationOptions } from "../../util/deadline.js";
import type { Instance, InstanceInfo, InstanceOf } from "../instance.js";
import { asInstance } from "../instance.js";
import type { InstanceSpec } from "../instance-spec.js";
import { LABELS, ownerIsDead } from "../labels.js";
import type { Runtime } from "../runtime.js";
import { startInstance } from "../start-sequence.js";
import { engineShell } from "./apply-network-policy.js";
import type { AddressMode } from "./container-endpoint.js";
import type { DockerConnection } from "./docker-connection.js";
import { bridgeIsReachable, connectionFromEnv, openEngine, pingDocker } from "./docker-connection.js";
import { DockerEvents } from "./docker-events.js";
import { DockerImages } from "./docker-images.js";
import { removeContainer } from "./docker-instance.js";
import { dockerStartDriver } from "./docker-start.js";
import type { EngineContext } from "./engine-context.js";
import { instanceFor } from "./engine-context.js";

export interface DockerRuntimeOptions {
  /** The engine to use; default from `DOCKER_HOST`, else the local socket. `{ ssh }` is a remote host. */
  connection?: DockerConnection;
  /**
   * How the client reaches containers of a local or tcp engine: their bridge address (no
   * port opened at all), or a port published on 127.0.0.1 only. Default: the bridge
   * address for a local engine on Linux, else published. Containers of a remote (SSH)
   * engine are always reached through a tunnel to their bridge address.
   */
  address?: AddressMode;
  /** Receives progress lines of long steps (shipping an image to a remote host). */
  onProgress?: (line: string) => void;
}

/** Runs environments as labelled containers of a Docker engine (dockerode). */
export class DockerRuntime implements Runtime {
  readonly kind = "docker" as const;
  readonly connection: DockerConnection;
  /** `localhost`, or the SSH host's label. */
  readonly host: string;
  readonly images: DockerImages;
  private readonly ctx: EngineContext;
  private readonly docker: Docker;
  private closed = false;

  constructor(options: DockerRuntimeOptions = {}) {
    this.connection = options.connection ?? connectionFromEnv();
    const engine = openEngine(this.connection);
    this.docker = engine.docker;
    this.host = engine.label;
    this.images = new DockerImages(engine, options.onProgress);
    this.ctx = {
      docker: engine.docker,
      engine,
      connection: this.connection,
      host: engine.label,
      // A remote engine publishes nothing: its containers are reached through tunnels to their bridge address.
      address: engine.sshHost
        ? "container-ip"
        : (options.address ?? (bridgeIsReachable(this.connection) ? "container-ip" : "published")),
      events: new DockerEvents(engine.docker),
      images: this.images,
      shell: engineShell(engine, this.connection),
    };
  }

  /** Throws `RuntimeUnavailableError` unless the engine answers. */
  async ping(timeoutMs?: number): Promise<void> {
    await pingDocker(this.docker, timeoutMs);
  }

  start<S extends InstanceSpec>(spec: S, options: OperationOptions = {}): Promise<InstanceOf<S>> {
    return startInstance(dockerStartDriver(this.ctx), spec, options);
  }

  /** The instance of an existing container (in any state) by id or name; undefined when there is none. */
  async attach(idOrName: string): Promise<Instance | undefined> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(idOrName).inspect();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
    if (info.Config.Labels?.[LABELS.managed] !== "true") return undefined; // never another's container
    return asInstance(await instanceFor(this.ctx, info, true));
  }

  async list(): Promise<InstanceInfo[]> {
    const containers = await this.managed({ all: true });
    return containers.map((c) => ({
      id: c.Id,
      name: nameOf(c),
      runtime: "docker",
      pool: c.Labels[LABELS.pool] ?? "",
      host: this.host,
      envName: c.Labels[LABELS.envName] ?? "",
      image: c.Image,
      state: c.State === "running" ? "running" : "stopped",
      // a remote container's address is reached only through a tunnel, opened on connect
      endpoint: this.ctx.engine.sshHost ? undefined : listedEndpoint(c, this.ctx.address),
      createdAt: new Date(c.Created * 1000),
      keep: c.Labels[LABELS.keep] === "true",
    }));
  }

  async find(pool: string): Promise<Instance[]> {
    const containers = await this.managed({ pool, status: ["running"] });
    const infos = await Promise.all(containers.map((c) => this.docker.getContainer(c.Id).inspect()));
    const sorted = infos.sort((a, b) => a.Name.localeCompare(b.Name, "en", { numeric: true }));
    return (await Promise.all(sorted.map((info) => instanceFor(this.ctx, info, true)))).map(asInstance);
  }

  async removeAll(pool?: string): Promise<string[]> {
    return this.remove(await this.managed({ all: true, ...(pool !== undefined ? { pool } : {}) }));
  }

  async garbageCollect(): Promise<string[]> {
    return this.remove((await this.managed({ all: true })).filter((c) => ownerIsDead(c.Labels)));
  }

  /** Releases this runtime's share of the SSH host (instances hold their own). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ctx.engine.release();
  }

  /** The containers affinetes made on this engine: all, or those of `pool`, in any or the given states. */
  private managed(filter: {
    all?: boolean;
    pool?: string;
    status?: string[];
  }): Promise<Docker.ContainerInfo[]> {
    const label = [
      `${LABELS.managed}=true`,
      ...(filter.pool !== undefined ? [`${LABELS.pool}=${filter.pool}`] : []),
    ];
    return this.docker.listContainers({
      ...(filter.all ? { all: true } : {}),
      filters: { label, ...(filter.status ? { status: filter.status } : {}) },
    });
  }

  private async remove(containers: readonly Docker.ContainerInfo[]): Promise<string[]> {
    await Promise.all(containers.map((c) => removeContainer(this.docker, c.Id)));
    return containers.map(nameOf);
  }
}

function nameOf(c: Docker.ContainerInfo): string {
  return (c.Names[0] ?? c.Id).replace(/^\//, "");
}

/** The endpoint of a listed container, when it runs (listing carries its addresses). */
function listedEndpoint(c: Docker.ContainerInfo, mode: AddressMode): string | undefined {
  if (c.State !== "running") return undefined;
  if (mode === "published") {
    const port = c.Ports.find((p) => p.PrivatePort === SERVER_PORT && p.PublicPort)?.PublicPort;
    return port ? `http://127.0.0.1:${port}` : undefined;
  }
  const ip = Object.values(c.NetworkSettings?.Networks ?? {}).find((n) => n.IPAddress)?.IPAddress;
  return ip ? `http://${ip}:${SERVER_PORT}` : undefined;
}
