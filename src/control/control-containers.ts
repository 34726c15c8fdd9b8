import { randomBytes } from "node:crypto";
import type { Principal } from "../auth/principals.js";
import { NotFoundError, PermissionDeniedError, RuntimeUnavailableError } from "../errors.js";
import type { TaskInstance } from "../runtime/instance.js";
import { LABELS } from "../runtime/labels.js";
import type { NetworkPolicy } from "../runtime/network-policy.js";
import type { Runtime } from "../runtime/runtime.js";
import type { ContainerRequest } from "./container-request.js";
import { CONTAINER_LABEL, checkMountPaths, taskScript } from "./container-request.js";
import type { ControlDisks } from "./control-disks.js";
import type { ContainerFilter, ContainerRecord, ControlStore, VolumeMount } from "./control-store.js";
import type { ContainerView } from "./control-views.js";
import { DEFAULT_DISK_PATH, containerView } from "./control-views.js";

/** What the containers part of the control plane needs. */
export interface ControlContainersOptions {
  store: ControlStore;
  /** The runtime running containers (as tasks); undefined: containers are refused with the reason. */
  runtime: Runtime | undefined;
  disks: ControlDisks;
  /** The network policy of containers that give none; default `"full"`. */
  defaultNetwork?: NetworkPolicy | undefined;
}

/**
 * The control plane's containers: tasks of the runtime that mount disks. Every record
 * lives in the store, so a restarted service knows them all (`recover`).
 */
export class ControlContainers {
  private readonly live = new Map<string, TaskInstance>();
  private readonly watching = new Set<string>();

  constructor(private readonly options: ControlContainersOptions) {}

  /**
   * Starts a container. Everything the request names is checked before anything is
   * recorded, and a container that fails to start is forgotten again: a refused request
   * leaves no record behind (nor a container in the engine).
   */
  async create(principal: Principal, request: ContainerRequest): Promise<ContainerView> {
    const runtime = this.runtime();
    const script = taskScript(request);
    const diskPath = request.diskPath ?? DEFAULT_DISK_PATH;
    checkMountPaths(request.disk !== undefined ? diskPath : undefined, Object.keys(request.volumes ?? {}));
    const disk =
      request.disk !== undefined
        ? await this.options.disks.resolve(principal, request.disk, "write")
        : undefined;
    const volumes: Array<VolumeMount & { location: string }> = [];
    for (const [path, volume] of Object.entries(request.volumes ?? {})) {
      const readOnly = volume.readOnly ?? false;
      const mounted = await this.options.disks.resolve(principal, volume.disk, readOnly ? "read" : "write");
      volumes.push({ path, diskId: mounted.id, readOnly, location: mounted.location });
    }
    const network = request.network ?? this.options.defaultNetwork ?? "full";
    const record: ContainerRecord = {
      id: `ctr_${randomBytes(8).toString("hex")}`,
      owner: principal.name,
      diskId: disk?.id,
      diskPath,
      volumes: volumes.map(({ location: _location, ...v }) => v),
      image: request.image,
      command: request.command,
      initScript: request.initScript,
      env: request.env ?? {},
      metadata: request.metadata ?? {},
      vcpuCount: request.vcpuCount,
      memSizeMiB: request.memSizeMiB,
      ports: (request.ports ?? []).map((port) => ({ port, url: undefined })),
      network,
      status: "creating",
      exitCode: undefined,
      error: undefined,
      runtimeId: undefined,
      createdAt: Date.now(),
      finishedAt: undefined,
    };
    // recorded first: a service killed while starting it finds it (`recover`) and cleans up
    await this.options.store.createContainer(record);
    let instance: TaskInstance | undefined;
    try {
      instance = await runtime.start({
        envName: "control",
        name: `afs-${record.id.replace("_", "-")}`,
        image: request.image,
        serve: false,
        task: { ...(script !== undefined ? { command: script } : {}) },
        envVars: record.env,
        mounts: [
          ...(disk ? [{ source: disk.location, target: diskPath }] : []),
          ...volumes.map((v) => ({ source: v.location, target: v.path, readOnly: v.readOnly })),
        ],
        ports: request.ports ?? [],
        network,
        restartPolicy: "no",
        keep: true, // the service owns it, not the process that happened to create it
        reuse: false,
        ...(request.vcpuCount !== undefined ? { cpus: request.vcpuCount } : {}),
        ...(request.memSizeMiB !== undefined ? { memoryBytes: request.memSizeMiB * 2 ** 20 } : {}),
        labels: { [CONTAINER_LABEL]: record.id, [LABELS.pool]: "control" },
      });
      const published = await instance.publishedPorts();
      record.ports = record.ports.map((p) => ({
        port: p.port,
        url: published[p.port] ? `http://${published[p.port]}` : undefined,
      }));
    } catch (err) {
      await instance?.stop().catch(() => undefined);
      await this.options.store.deleteContainer(record.id);
      throw err;
    }
    record.runtimeId = instance.id;
    record.status = "running";
    await this.options.store.updateContainer(record.id, {
      status: "running",
      runtimeId: instance.id,
      ports: record.ports,
    });
    this.track(record.id, instance);
    return containerView(record);
  }

  async list(principal: Principal, filter: Omit<ContainerFilter, "owner"> = {}): Promise<ContainerView[]> {
    const containers = await this.options.store.listContainers({
      ...filter,
      ...(principal.admin ? {} : { owner: principal.name }),
    });
    return containers.map(containerView);
  }

  async get(principal: Principal, id: string): Promise<ContainerView> {
    return containerView(await this.container(principal, id));
  }

  /** Stops a container (idempotent); it stays listed, `stopped`, until deleted. */
  async stop(principal: Principal | "admin", id: string): Promise<ContainerView> {
    const record =
      principal === "admin" ? await this.options.store.getContainer(id) : await this.container(principal, id);
    if (!record) throw new NotFoundError("container", id);
    if (record.status === "running" || record.status === "creating") {
      await this.options.store.updateContainer(id, { status: "stopped", finishedAt: Date.now() });
      await (await this.instance(record))?.stop();
      this.live.delete(id);
    }
    return containerView((await this.options.store.getContainer(id)) ?? record);
  }

  /** Stops and forgets a container. */
  async delete(principal: Principal, id: string): Promise<void> {
    const record = await this.container(principal, id);
    // removing it stops it too, running or exited; its watcher then finds no record to update
    await (await this.instance(record))?.stop();
    this.live.delete(id);
    await this.options.store.deleteContainer(id);
  }

  /** The container's output; with `follow`, what it writes next too, until it ends or `signal` aborts. */
  async logs(
    principal: Principal,
    id: string,
    options: { follow?: boolean; tail?: number; signal?: AbortSignal } = {},
  ): Promise<AsyncIterable<string>> {
    const record = await this.container(principal, id);
    const instance = await this.instance(record);
    if (!instance) return (async function* () {})();
    if (!options.follow) {
      const text = await instance.logs(options.tail !== undefined ? { tail: options.tail } : {});
      return (async function* () {
        yield text;
      })();
    }
    return instance.followLogs({
      ...(options.tail !== undefined ? { tail: options.tail } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  /** Waits until the container has ended; returns it with its exit code. */
  async wait(
    principal: Principal,
    id: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<ContainerView> {
    const record = await this.container(principal, id);
    if (record.status === "running") {
      const instance = await this.instance(record);
      if (instance) await this.finished(id, instance, options.signal);
    }
    return containerView((await this.options.store.getContainer(id)) ?? record);
  }

  /**
   * After a (re)start: containers recorded as running are watched again when Docker
   * still runs them, or marked with how they ended while the service was down.
   */
  async recover(): Promise<void> {
    if (!this.options.runtime) return;
    for (const status of ["running", "creating"] as const) {
      for (const record of await this.options.store.listContainers({ status })) {
        const instance = await this.instance(record);
        if (instance && (await instance.isRunning())) this.track(record.id, instance);
        else if (instance) await this.finished(record.id, instance);
        else {
          await this.options.store.updateContainer(record.id, {
            status: "failed",
            error: "its container vanished while the service was down",
            finishedAt: Date.now(),
          });
        }
      }
    }
  }

  /** Stops watching containers; they keep running (the service owns them across restarts). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.live.values()].map((i) => i.detach()));
    this.live.clear();
  }

  /** Records the exit of a running container when it comes. */
  private track(id: string, instance: TaskInstance): void {
    this.live.set(id, instance);
    if (this.watching.has(id)) return;
    this.watching.add(id);
    void this.finished(id, instance)
      .catch(() => undefined)
      .finally(() => this.watching.delete(id));
  }

  /** Waits for the exit and records it (unless it was stopped meanwhile). */
  private async finished(id: string, instance: TaskInstance, signal?: AbortSignal): Promise<void> {
    const exitCode = await instance.wait(signal ? { signal } : {});
    const current = await this.options.store.getContainer(id);
    if (current?.status === "running" || current?.status === "creating") {
      await this.options.store.updateContainer(id, { status: "exited", exitCode, finishedAt: Date.now() });
    }
  }

  /** The runtime's task of a record, when it still exists. */
  private async instance(record: ContainerRecord): Promise<TaskInstance | undefined> {
    const known = this.live.get(record.id);
    if (known) return known;
    if (!record.runtimeId || !this.options.runtime) return undefined;
    const instance = await this.options.runtime.attach(record.runtimeId);
    if (instance?.kind === "task") return instance;
    await instance?.detach(); // not one of ours: the runtime holds something else under that id
    return undefined;
  }

  private async container(principal: Principal, id: string): Promise<ContainerRecord> {
    const record = await this.options.store.getContainer(id);
    if (!record) throw new NotFoundError("container", id, `No such container: ${id}`);
    if (!principal.admin && record.owner !== principal.name)
      throw new PermissionDeniedError(`${principal.name} may not access container ${id}`);
    return record;
  }

  private runtime(): Runtime {
    if (!this.options.runtime)
      throw new RuntimeUnavailableError(
        "docker",
        "no Docker engine answers on this server: containers cannot run",
      );
    return this.options.runtime;
  }
}
