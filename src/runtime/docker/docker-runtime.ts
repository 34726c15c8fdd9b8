import type Docker from "dockerode";
import { randomBytes } from "node:crypto";
import { InfrastructureError, InstanceStartError, NotFoundError, ValidationError } from "../../errors.js";
import { sanitizeName } from "../../image/env-folder.js";
import type { OperationOptions } from "../../util/deadline.js";
import { Deadline } from "../../util/deadline.js";
import type { EnvType, Instance, InstanceInfo, InstanceSpec } from "../instance.js";
import { validateInstanceName } from "../instance-name.js";
import { LABELS, ownerIsDead, ownerLabels } from "../labels.js";
import type { Runtime } from "../runtime.js";
import { readinessClient, waitForReady } from "../wait-for-ready.js";
import type { DockerConnection } from "./docker-connection.js";
import { bridgeIsReachable, connectionFromEnv, openEngine, pingDocker } from "./docker-connection.js";
import type { DockerEngine } from "./docker-connection.js";
import type { ContainerReach } from "./container-reach.js";
import { directReach, noReach, tunnelReach } from "./container-reach.js";
import { KEEP_ALIVE_SCRIPT } from "../keep-alive.js";
import { shipImage } from "./ship-image.js";
import { DockerInstance, removeContainer } from "./docker-instance.js";
import type { AddressMode } from "./container-endpoint.js";
import { SERVER_PORT_KEY } from "./container-endpoint.js";
import { DockerEvents } from "./docker-events.js";
import { SERVER_PORT } from "../../config.js";
import { pullImage } from "./pull-image.js";
import type { NetworkPlan } from "./network-plan.js";
import {
  NETWORK_LABEL,
  isSealed,
  planHostConfig,
  planLabel,
  planNetwork,
  planOf,
  samePolicy,
  waitForNetwork,
} from "./network-plan.js";
import type { EngineShell } from "./apply-network-policy.js";
import { engineShell, holdNetworkPolicy, requireEngineShell } from "./apply-network-policy.js";
import { AUTH_TOKEN_VARIABLE } from "../../server/server-files.js";
import { instanceToken } from "../../transport/auth-token.js";

const DEFAULT_START_TIMEOUT_MS = 120_000;

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

interface ImageFacts {
  id: string;
  envType: EnvType;
  /** Its entrypoint and command, as a task without a command of its own runs them. */
  command: string[];
}

/** Runs environments as labelled containers of a Docker engine (dockerode). */
export class DockerRuntime implements Runtime {
  readonly kind = "docker" as const;
  readonly connection: DockerConnection;
  /** `localhost`, or the SSH host's label. */
  readonly host: string;
  private readonly engine: DockerEngine;
  private readonly docker: Docker;
  private readonly address: AddressMode;
  private readonly events: DockerEvents;
  private readonly onProgress: ((line: string) => void) | undefined;
  /** Where network rules are set: the engine's host (undefined for a tcp engine). */
  private readonly shell: EngineShell | undefined;

  constructor(options: DockerRuntimeOptions = {}) {
    this.connection = options.connection ?? connectionFromEnv();
    this.engine = openEngine(this.connection);
    this.docker = this.engine.docker;
    this.host = this.engine.label;
    // A remote engine publishes nothing: its containers are reached through tunnels to their bridge address.
    this.address = this.engine.sshHost
      ? "container-ip"
      : (options.address ?? (bridgeIsReachable(this.connection) ? "container-ip" : "published"));
    this.events = new DockerEvents(this.docker);
    this.onProgress = options.onProgress;
    this.shell = engineShell(this.engine, this.connection);
  }

  /** Throws `RuntimeUnavailableError` unless the engine answers. */
  async ping(timeoutMs?: number): Promise<void> {
    await pingDocker(this.docker, timeoutMs);
  }

  async start(spec: InstanceSpec, options: OperationOptions = {}): Promise<Instance> {
    if (!spec.image) throw new ValidationError("image", "the docker runtime needs an image");
    if (spec.name !== undefined) validateInstanceName(spec.name);
    const name = spec.name ?? `affinetes-${sanitizeName(spec.envName)}-${randomBytes(4).toString("hex")}`;
    const deadline = new Deadline(`starting ${name}`, {
      timeoutMs: options.timeoutMs ?? DEFAULT_START_TIMEOUT_MS,
      signal: options.signal,
    });
    // names resolve, and a host that cannot hold the rules refuses, before anything is created
    const plan = await deadline.run(() => planNetwork(spec));
    if (plan && !isSealed(plan)) requireEngineShell(this.shell, this.host);
    const image = await deadline.run(() => this.imageFacts(spec, deadline));
    const envType = spec.envType ?? image.envType;
    if (spec.name !== undefined && spec.reuse !== false) {
      const adopted = await this.adopt(name, image, envType, spec, deadline);
      if (adopted) return adopted;
    }
    return this.create(name, envType, spec, plan, image, deadline);
  }

  private async imageFacts(spec: InstanceSpec, deadline: Deadline): Promise<ImageFacts> {
    const ref = spec.image as string;
    if (spec.pull) await pullImage(this.docker, ref, deadline);
    // A pulled image is the one asked for; otherwise a remote host gets this machine's image.
    if (this.engine.sshHost)
      await shipImage(ref, this.docker, this.host, deadline, {
        keepRemote: spec.pull === true,
        onProgress: this.onProgress,
      });
    try {
      const info = await this.docker.getImage(ref).inspect();
      const label = info.Config?.Labels?.[LABELS.envType];
      const entrypoint = info.Config?.Entrypoint ?? [];
      return {
        id: info.Id,
        envType: label === "http_based" ? "http_based" : "function_based",
        command: [
          ...(typeof entrypoint === "string" ? [entrypoint] : entrypoint),
          ...(info.Config?.Cmd ?? []),
        ],
      };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) {
        throw new NotFoundError(
          "image",
          ref,
          `Image not found: ${ref}. Build it with buildImageFromEnv, or set pull: true to fetch it from a registry.`,
        );
      }
      throw new InfrastructureError(`could not inspect image ${ref}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Reuses a container of this name when it is ours and runs the same image; otherwise clears the name. */
  private async adopt(
    name: string,
    image: ImageFacts,
    envType: EnvType,
    spec: InstanceSpec,
    deadline: Deadline,
  ): Promise<Instance | undefined> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(name).inspect();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw new InfrastructureError(`could not inspect container ${name}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (info.Config.Labels?.[LABELS.managed] !== "true") {
      throw new ValidationError(
        "containerName",
        `a container named ${name} exists and was not created by affinetes; choose another name or remove it`,
      );
    }
    if (
      spec.forceRecreate ||
      info.Image !== image.id ||
      !samePolicy(planOf(info.Config.Labels), spec.network)
    ) {
      await removeContainer(this.docker, info.Id);
      return undefined;
    }
    // its own plan: the addresses its names resolved to when it was created
    await this.startContainer(info.Id, planOf(info.Config.Labels), deadline);
    return this.ready(info.Id, name, envType, spec, deadline, true);
  }

  private async create(
    name: string,
    envType: EnvType,
    spec: InstanceSpec,
    plan: NetworkPlan | undefined,
    image: ImageFacts,
    deadline: Deadline,
  ): Promise<Instance> {
    const serves = spec.serve !== false;
    const published = serves && this.address === "published";
    const extraPorts = (spec.ports ?? []).map((p) => `${p}/tcp`);
    const container = await deadline.run(() =>
      this.docker.createContainer({
        name,
        Image: spec.image,
        Env: containerEnv(spec),
        Labels: {
          ...spec.labels,
          [LABELS.managed]: "true",
          [LABELS.envName]: spec.envName,
          [LABELS.envType]: envType,
          [LABELS.keep]: String(spec.keep ?? false),
          [LABELS.serve]: String(serves),
          ...ownerLabels(),
          ...(plan ? { [NETWORK_LABEL]: planLabel(plan) } : {}),
        },
        ...(serves ? {} : idleOrTask(spec.task, plan, image)),
        ExposedPorts: Object.fromEntries(
          [...(serves ? [SERVER_PORT_KEY] : []), ...extraPorts].map((p) => [p, {}]),
        ),
        ...(spec.workdir !== undefined ? { WorkingDir: spec.workdir } : {}),
        HostConfig: {
          RestartPolicy: { Name: spec.restartPolicy ?? "always" },
          ...(spec.memoryBytes !== undefined
            ? { Memory: spec.memoryBytes, MemorySwap: spec.memoryBytes }
            : {}),
          ...(spec.cpus !== undefined ? { NanoCpus: Math.round(spec.cpus * 1e9) } : {}),
          // Published only on loopback: nothing is ever opened to the network.
          PortBindings: Object.fromEntries(
            [...(published ? [SERVER_PORT_KEY] : []), ...extraPorts].map((p) => [
              p,
              [{ HostIp: "127.0.0.1", HostPort: "" }],
            ]),
          ),
          ...(spec.mounts?.length
            ? {
                Mounts: spec.mounts.map((m) => ({
                  Type: "bind" as const,
                  Source: m.source,
                  Target: m.target,
                  ReadOnly: m.readOnly ?? false,
                })),
              }
            : {}),
          ...(plan ? planHostConfig(plan) : {}),
        },
      }),
    );
    try {
      await this.startContainer(container.id, plan, deadline);
      return await this.ready(container.id, name, envType, spec, deadline, false);
    } catch (err) {
      await removeContainer(this.docker, container.id).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Starts a container, unless it runs: under a network plan, off the network until its
   * rules hold (which a running one gets again, in case it was restarted without them).
   */
  private async startContainer(id: string, plan: NetworkPlan | undefined, deadline: Deadline): Promise<void> {
    if (plan && !isSealed(plan)) {
      const shell = requireEngineShell(this.shell, this.host);
      await deadline.run((signal) => holdNetworkPolicy(this.docker, id, plan, shell, { signal }));
      return;
    }
    const info = await deadline.run(() => this.docker.getContainer(id).inspect());
    if (info.State.Running) return;
    await deadline.run((signal) => this.docker.getContainer(id).start(signal ? { abortSignal: signal } : {}));
  }

  private async ready(
    id: string,
    name: string,
    envType: EnvType,
    spec: InstanceSpec,
    deadline: Deadline,
    reused: boolean,
  ): Promise<Instance> {
    const info = await deadline.run(() => this.docker.getContainer(id).inspect());
    const instance = await this.instanceFor(info, envType, reused);
    if (spec.task) return instance; // a task is ready once started, and may already have ended
    if (!instance.serves) {
      // A sandbox is ready once it runs: there is no server to ask.
      const reason = await this.exitReason(id, info.RestartCount);
      if (reason)
        throw new InstanceStartError(name, reason, await instance.logs({ tail: 50 }).catch(() => ""));
      return instance;
    }
    const http = readinessClient(instance.endpoint(), instance.authToken);
    try {
      await waitForReady({
        instance: name,
        http,
        envType,
        deadline,
        failure: () => this.exitReason(id, info.RestartCount),
        logs: () => instance.logs({ tail: 50 }),
      });
    } catch (err) {
      await instance.detach();
      throw err;
    } finally {
      await http.close();
    }
    return instance;
  }

  /**
   * Why the container can no longer become ready, if it cannot. Any restart since
   * `baselineRestarts` counts: with restart policy `always` a crashing server is rarely
   * caught in the exited state, but its restart count gives it away.
   */
  private async exitReason(id: string, baselineRestarts: number): Promise<string | undefined> {
    try {
      const info = await this.docker.getContainer(id).inspect();
      const state = info.State;
      const restarted = info.RestartCount > baselineRestarts;
      if (state.Running && !state.Restarting && !restarted) return undefined;
      if (state.OOMKilled) return "the container was killed for exceeding its memory limit";
      const restarts = restarted ? `, restarted ${info.RestartCount - baselineRestarts} time(s)` : "";
      return `the container exited with code ${state.ExitCode}${restarts}${state.Error ? ` (${state.Error})` : ""}`;
    } catch (err) {
      return `the container disappeared (${(err as Error).message})`;
    }
  }

  /** Whether the engine has an image of this reference. */
  async hasImage(ref: string): Promise<boolean> {
    try {
      await this.docker.getImage(ref).inspect();
      return true;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return false;
      throw err;
    }
  }

  /** The instance of an existing container (in any state) by id or name; undefined when there is none. */
  async attach(idOrName: string): Promise<DockerInstance | undefined> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(idOrName).inspect();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
    const envType = info.Config.Labels?.[LABELS.envType] === "http_based" ? "http_based" : "function_based";
    return this.instanceFor(info, envType, true);
  }

  async list(): Promise<InstanceInfo[]> {
    const containers = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.managed}=true`] },
    });
    return containers.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? c.Id).replace(/^\//, ""),
      runtime: "docker",
      pool: c.Labels[LABELS.pool] ?? "",
      host: this.host,
      envName: c.Labels[LABELS.envName] ?? "",
      image: c.Image,
      state: c.State === "running" ? "running" : "stopped",
      // a remote container's address is reached only through a tunnel, opened on connect
      endpoint: this.engine.sshHost ? undefined : listedEndpoint(c, this.address),
      createdAt: new Date(c.Created * 1000),
      keep: c.Labels[LABELS.keep] === "true",
    }));
  }

  async find(pool: string): Promise<Instance[]> {
    const containers = await this.docker.listContainers({
      filters: { label: [`${LABELS.managed}=true`, `${LABELS.pool}=${pool}`], status: ["running"] },
    });
    const infos = await Promise.all(containers.map((c) => this.docker.getContainer(c.Id).inspect()));
    const sorted = infos
      .sort((a, b) => a.Name.localeCompare(b.Name, "en", { numeric: true }))
      .map((info) =>
        this.instanceFor(
          info,
          info.Config.Labels?.[LABELS.envType] === "http_based" ? "http_based" : "function_based",
          true,
        ),
      );
    return Promise.all(sorted);
  }

  async removeAll(pool?: string): Promise<string[]> {
    const label = [`${LABELS.managed}=true`, ...(pool !== undefined ? [`${LABELS.pool}=${pool}`] : [])];
    const containers = await this.docker.listContainers({ all: true, filters: { label } });
    await Promise.all(containers.map((c) => removeContainer(this.docker, c.Id)));
    return containers.map((c) => (c.Names[0] ?? c.Id).replace(/^\//, ""));
  }

  async garbageCollect(): Promise<string[]> {
    const containers = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.managed}=true`] },
    });
    const dead = containers.filter((c) => ownerIsDead(c.Labels));
    await Promise.all(dead.map((c) => removeContainer(this.docker, c.Id)));
    return dead.map((c) => (c.Names[0] ?? c.Id).replace(/^\//, ""));
  }

  /** Releases this runtime's share of the SSH host (instances hold their own). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.engine.release();
  }

  private closed = false;

  /** A new DockerInstance for an inspected container: its own route, and its own share of the host. */
  private async instanceFor(
    info: Docker.ContainerInspectInfo,
    envType: EnvType,
    reused: boolean,
  ): Promise<DockerInstance> {
    const sshHost = this.engine.sshHost;
    const serves = info.Config.Labels?.[LABELS.serve] !== "false";
    const reach: ContainerReach = !serves
      ? noReach
      : sshHost
        ? tunnelReach(sshHost)
        : directReach(this.address);
    const share = sshHost?.share(); // the instance's own hold on the host's connection
    const release = () => share?.close();
    const plan = planOf(info.Config.Labels);
    const shell = this.shell;
    try {
      return new DockerInstance({
        docker: this.docker,
        connection: this.connection,
        reach,
        host: this.host,
        release,
        events: this.events,
        id: info.Id,
        name: info.Name.replace(/^\//, ""),
        envType,
        serves,
        endpoint: serves ? await reach.open(info) : "",
        reused,
        keep: info.Config.Labels?.[LABELS.keep] === "true",
        ...(plan && !isSealed(plan)
          ? {
              startAgain: () =>
                holdNetworkPolicy(this.docker, info.Id, plan, requireEngineShell(shell, this.host)),
            }
          : {}),
        authToken: serves ? tokenOf(info) : undefined,
      });
    } catch (err) {
      await reach.close();
      release();
      throw err;
    }
  }
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

/**
 * The container's environment, with its method server's token: kept in the container's
 * own configuration, which only the engine's users read (as they could exec into it anyway),
 * never in a label or an image, and never visible to another container.
 */
function containerEnv(spec: InstanceSpec): string[] {
  const token = spec.serve !== false ? instanceToken(spec) : undefined;
  const vars = token ? { ...spec.envVars, [AUTH_TOKEN_VARIABLE]: token } : (spec.envVars ?? {});
  return Object.entries(vars).map(([k, v]) => `${k}=${v}`);
}

/** The token an existing container's server was started with, read back from its configuration. */
function tokenOf(info: Docker.ContainerInspectInfo): string | undefined {
  const prefix = `${AUTH_TOKEN_VARIABLE}=`;
  const entry = info.Config.Env?.find((e) => e.startsWith(prefix));
  return entry ? entry.slice(prefix.length) || undefined : undefined;
}

/**
 * What a container without a method server runs: an idle shell (sandbox), or its task
 * (which, under an allowlist, waits for the network it joins a moment after starting).
 */
function idleOrTask(
  task: InstanceSpec["task"],
  plan: NetworkPlan | undefined,
  image: ImageFacts,
): Partial<Docker.ContainerCreateOptions> {
  if (!task) return { Entrypoint: ["sh", "-c", KEEP_ALIVE_SCRIPT], Cmd: [] };
  const command = task.command !== undefined ? ["sh", "-c", task.command] : undefined;
  if (plan?.resolved.kind === "allow")
    return { Entrypoint: waitForNetwork(command ?? image.command), Cmd: [] };
  return command ? { Entrypoint: command, Cmd: [] } : {};
}
