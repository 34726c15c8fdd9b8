import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import {
  AffinetesError,
  ConflictError,
  NotFoundError,
  PermissionDeniedError,
  RuntimeUnavailableError,
  ValidationError,
} from "../errors.js";
import { buildPackedImage, tagOf } from "../image/image-builder.js";
import type { DockerInstance } from "../runtime/docker/docker-instance.js";
import type { DockerRuntime } from "../runtime/docker/docker-runtime.js";
import { LABELS } from "../runtime/labels.js";
import type { NetworkPolicy } from "../runtime/network-policy.js";
import type {
  ContainerFilter,
  ContainerRecord,
  ControlStore,
  DiskAccess,
  DiskRecord,
  VolumeMount,
} from "./control-store.js";
import { diskAccess } from "./control-store.js";
import { receiveContext } from "./context-upload.js";
import type { DiskEntry } from "./disk-files.js";
import { DEFAULT_MAX_FILE_BYTES, DiskFiles } from "./disk-files.js";
import type { Principal } from "../auth/principals.js";

/** The label tying a Docker container to its control-plane container id. */
export const CONTAINER_LABEL = "affinetes.control.container";

/** Where a container's disk is mounted unless it says otherwise. */
export const DEFAULT_DISK_PATH = "/mnt/disk";

/** Default cap of an uploaded image build context: 512 MiB. */
export const DEFAULT_MAX_CONTEXT_BYTES = 512 * 2 ** 20;

/** A disk's id; anything else given where a disk is expected is a name (`name` or `owner/name`). */
export const DISK_ID = /^disk_[0-9a-f]{16}$/;

/** What `createContainer` takes (validated by the REST layer). */
export interface ContainerRequest {
  disk?: string | undefined;
  diskPath?: string | undefined;
  volumes?: Record<string, { disk: string; readOnly?: boolean | undefined }> | undefined;
  image: string;
  command?: string | undefined;
  initScript?: string | undefined;
  env?: Record<string, string> | undefined;
  metadata?: Record<string, string> | undefined;
  vcpuCount?: number | undefined;
  memSizeMiB?: number | undefined;
  ports?: number[] | undefined;
  /** What it may reach; default the service's (`defaultNetwork`, else `"full"`). */
  network?: NetworkPolicy | undefined;
}

/** A disk as clients see it. */
export type DiskView = Omit<DiskRecord, "location" | "createdAt"> & { createdAt: string };

/** A container as clients see it. */
export type ContainerView = Omit<ContainerRecord, "runtimeId" | "createdAt" | "finishedAt"> & {
  createdAt: string;
  finishedAt: string | null;
};

export interface ControlPlaneOptions {
  store: ControlStore;
  /** The engine running containers; undefined: containers are refused with the reason. */
  docker: DockerRuntime | undefined;
  /** Where local disks keep their folders. */
  disksRoot: string;
  /** Cap of one uploaded file; default 1 GiB. */
  maxFileBytes?: number | undefined;
  /** Cap of an uploaded image build context; default 512 MiB. */
  maxContextBytes?: number | undefined;
  /** The network policy of containers that give none; default `"full"`. */
  defaultNetwork?: NetworkPolicy | undefined;
}

/**
 * The control plane's logic, without HTTP: disks (folders on the server host) with
 * per-principal access, and containers that mount them, through the Docker runtime.
 * Every record lives in the store, so a restarted service knows them all (`recover`).
 *
 * A disk is named, wherever a disk is expected, by its id (`disk_<hex>`), by `owner/name`,
 * or by a bare `name`, which means the caller's own disk of that name only: names are
 * unique per owner, so a disk someone else made and granted can never stand in for one's
 * own by sharing its name.
 */
export class ControlPlane {
  private readonly files: DiskFiles;
  private readonly live = new Map<string, DockerInstance>();
  private readonly watching = new Set<string>();

  constructor(private readonly options: ControlPlaneOptions) {
    this.files = new DiskFiles(options.disksRoot);
  }

  // ---- disks

  /** Who `principal` is, as the service knows it (clients check whose disk they adopt). */
  whoami(principal: Principal): { name: string; admin: boolean } {
    return { name: principal.name, admin: principal.admin };
  }

  async createDisk(principal: Principal, name: string): Promise<DiskView> {
    if (DISK_ID.test(name) || name.includes("/"))
      throw new ValidationError("name", "a disk name must not look like a disk id nor hold '/'");
    // refused before a folder is made for nothing (the store's constraint decides a race)
    if (await this.options.store.getDiskByName(principal.name, name)) throw new ConflictError("disk", name);
    const id = `disk_${randomBytes(8).toString("hex")}`;
    const location = await this.files.create(id);
    const disk: DiskRecord = {
      id,
      name,
      backend: "local",
      location,
      owner: principal.name,
      users: {},
      createdAt: Date.now(),
    };
    try {
      await this.options.store.createDisk(disk);
    } catch (err) {
      await this.files.remove(location); // nothing half-created is kept
      throw err;
    }
    return diskView(disk);
  }

  async listDisks(principal: Principal): Promise<DiskView[]> {
    const disks = await this.options.store.listDisks(principal.admin ? {} : { principal: principal.name });
    return disks.map(diskView);
  }

  async getDisk(principal: Principal, idOrName: string): Promise<DiskView> {
    return diskView(await this.disk(principal, idOrName, "read"));
  }

  /** Grants access (owner or admin only): `users` replaces the disk's authorized users. */
  async setDiskUsers(
    principal: Principal,
    idOrName: string,
    users: Record<string, DiskAccess>,
  ): Promise<DiskView> {
    const disk = await this.disk(principal, idOrName, "read");
    if (!principal.admin && disk.owner !== principal.name)
      throw new PermissionDeniedError(`only the owner of disk ${disk.name} may grant access to it`);
    const granted: Record<string, DiskAccess> = {};
    for (const [user, access] of Object.entries(users)) {
      if (access !== "read" && access !== "write")
        throw new ValidationError(`users.${user}`, "read or write");
      Object.defineProperty(granted, user, { value: access, enumerable: true, writable: true });
    }
    await this.options.store.setDiskUsers(disk.id, granted);
    return diskView({ ...disk, users: granted });
  }

  /** Deletes a disk and its files; refused while a container mounts it, unless `force` (which stops them). */
  async deleteDisk(principal: Principal, idOrName: string, options: { force?: boolean } = {}): Promise<void> {
    const disk = await this.disk(principal, idOrName, "read");
    if (!principal.admin && disk.owner !== principal.name)
      throw new PermissionDeniedError(`only the owner of disk ${disk.name} may delete it`);
    const users = await this.options.store.containersUsingDisk(disk.id);
    if (users.length && !options.force) {
      throw new ConflictError(
        "mount of disk",
        `${disk.name} by ${users.map((c) => c.id).join(", ")} (stop them, or delete with force)`,
      );
    }
    for (const container of users) await this.stopContainer(principal, container.id, { asAdmin: true });
    await this.options.store.deleteDisk(disk.id);
    await this.files.remove(disk.location);
  }

  async readDirectory(principal: Principal, idOrName: string, path: string): Promise<DiskEntry[]> {
    const disk = await this.disk(principal, idOrName, "read");
    return this.files.list(disk.location, path);
  }

  async readFile(
    principal: Principal,
    idOrName: string,
    path: string,
  ): Promise<{ stream: Readable; size: number }> {
    const disk = await this.disk(principal, idOrName, "read");
    return this.files.read(disk.location, path);
  }

  /** Writes a file from a stream; past `maxFileBytes` a PayloadTooLargeError, and nothing is kept. */
  async writeFile(
    principal: Principal,
    idOrName: string,
    path: string,
    content: AsyncIterable<Uint8Array>,
  ): Promise<number> {
    const disk = await this.disk(principal, idOrName, "write");
    return this.files.write(disk.location, path, content, { maxBytes: this.maxFileBytes });
  }

  /** The cap of one uploaded file. */
  get maxFileBytes(): number {
    return this.options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  }

  /** The cap of an uploaded build context. */
  get maxContextBytes(): number {
    return this.options.maxContextBytes ?? DEFAULT_MAX_CONTEXT_BYTES;
  }

  /** Removes a file or folder of the disk; false when there was none. */
  async deleteFile(principal: Principal, idOrName: string, path: string): Promise<boolean> {
    const disk = await this.disk(principal, idOrName, "write");
    return this.files.delete(disk.location, path);
  }

  // ---- images

  /** The tag of the image of content hash `hash` when the engine has it. */
  async image(hash: string): Promise<{ hash: string; tag: string } | undefined> {
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new ValidationError("hash", "a sha256 in hex (64 characters)");
    const tag = tagOf(hash);
    return (await this.docker().hasImage(tag)) ? { hash, tag } : undefined;
  }

  /**
   * Builds a client's packed image context (`Image.buildContext()`) unless the engine has
   * it: the hash is checked against the content, so a tag always means its content.
   */
  async buildImage(hash: string, context: AsyncIterable<Uint8Array>): Promise<{ hash: string; tag: string }> {
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new ValidationError("hash", "a sha256 in hex (64 characters)");
    this.docker();
    // capped and hashed as it arrives: a context too large or not of its hash is never built
    await using received = await receiveContext(context, hash, { maxBytes: this.maxContextBytes });
    return { hash, tag: await buildPackedImage(hash, received.file) };
  }

  // ---- containers

  /**
   * Starts a container. Everything the request names is checked before anything is
   * recorded, and a container that fails to start is forgotten again: a refused request
   * leaves no record behind (nor a container in the engine).
   */
  async createContainer(principal: Principal, request: ContainerRequest): Promise<ContainerView> {
    const docker = this.docker();
    const script = taskScript(request);
    const diskPath = request.diskPath ?? DEFAULT_DISK_PATH;
    checkMountPaths(request.disk !== undefined ? diskPath : undefined, Object.keys(request.volumes ?? {}));
    const disk = request.disk !== undefined ? await this.disk(principal, request.disk, "write") : undefined;
    const volumes: Array<VolumeMount & { location: string }> = [];
    for (const [path, volume] of Object.entries(request.volumes ?? {})) {
      const readOnly = volume.readOnly ?? false;
      const mounted = await this.disk(principal, volume.disk, readOnly ? "read" : "write");
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
    let instance: DockerInstance | undefined;
    try {
      instance = (await docker.start({
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
      })) as DockerInstance;
      const published = await instance.publishedPorts();
      record.ports = record.ports.map((p) => ({
        port: p.port,
        url: published[p.port] ? `http://${published[p.port]}` : undefined,
      }));
    } catch (err) {
      await instance?.stop().catch(() => undefined);
      await this.options.store.deleteContainer(record.id);
      throw engineRefusal(err);
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

  async listContainers(
    principal: Principal,
    filter: Omit<ContainerFilter, "owner"> = {},
  ): Promise<ContainerView[]> {
    const containers = await this.options.store.listContainers({
      ...filter,
      ...(principal.admin ? {} : { owner: principal.name }),
    });
    return containers.map(containerView);
  }

  async getContainer(principal: Principal, id: string): Promise<ContainerView> {
    return containerView(await this.container(principal, id));
  }

  /** Stops a container (idempotent); it stays listed, `stopped`, until deleted. */
  async stopContainer(
    principal: Principal,
    id: string,
    options: { asAdmin?: boolean } = {},
  ): Promise<ContainerView> {
    const record = options.asAdmin
      ? await this.options.store.getContainer(id)
      : await this.container(principal, id);
    if (!record) throw new NotFoundError("container", id);
    if (record.status === "running" || record.status === "creating") {
      await this.options.store.updateContainer(id, { status: "stopped", finishedAt: Date.now() });
      await (await this.instance(record))?.stop();
      this.live.delete(id);
    }
    return containerView((await this.options.store.getContainer(id)) ?? record);
  }

  /** Stops and forgets a container. */
  async deleteContainer(principal: Principal, id: string): Promise<void> {
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
    if (!this.options.docker) return;
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

  // ---- internals

  private docker(): DockerRuntime {
    if (!this.options.docker)
      throw new RuntimeUnavailableError(
        "docker",
        "no Docker engine answers on this server: containers cannot run",
      );
    return this.options.docker;
  }

  /** Records the exit of a running container when it comes. */
  private track(id: string, instance: DockerInstance): void {
    this.live.set(id, instance);
    if (this.watching.has(id)) return;
    this.watching.add(id);
    void this.finished(id, instance)
      .catch(() => undefined)
      .finally(() => this.watching.delete(id));
  }

  /** Waits for the exit and records it (unless it was stopped meanwhile). */
  private async finished(id: string, instance: DockerInstance, signal?: AbortSignal): Promise<void> {
    const exitCode = await instance.wait(signal ? { signal } : {});
    const current = await this.options.store.getContainer(id);
    if (current?.status === "running" || current?.status === "creating") {
      await this.options.store.updateContainer(id, { status: "exited", exitCode, finishedAt: Date.now() });
    }
  }

  /** The Docker instance of a record, when its container still exists. */
  private async instance(record: ContainerRecord): Promise<DockerInstance | undefined> {
    const known = this.live.get(record.id);
    if (known) return known;
    if (!record.runtimeId || !this.options.docker) return undefined;
    return this.options.docker.attach(record.runtimeId);
  }

  /** A disk by reference (see the class) that `principal` may access as `need`s; else NotFound / PermissionDenied. */
  private async disk(principal: Principal, ref: string, need: DiskAccess): Promise<DiskRecord> {
    const disk = await this.findDisk(principal, ref);
    if (!disk) throw new NotFoundError("disk", ref, `No such disk: ${ref}`);
    if (principal.admin || disk.owner === principal.name) return disk;
    const access = diskAccess(disk, principal.name);
    if (!access) throw new PermissionDeniedError(`${principal.name} has no access to disk ${disk.name}`);
    if (need === "write" && access !== "write")
      throw new PermissionDeniedError(`${principal.name} may only read disk ${disk.name}`);
    return disk;
  }

  /** `disk_<hex>` is an id; `owner/name` a disk of that owner; a bare name the caller's own only. */
  private async findDisk(principal: Principal, ref: string): Promise<DiskRecord | undefined> {
    if (DISK_ID.test(ref)) return this.options.store.getDisk(ref);
    const slash = ref.lastIndexOf("/");
    if (slash > 0) return this.options.store.getDiskByName(ref.slice(0, slash), ref.slice(slash + 1));
    return this.options.store.getDiskByName(principal.name, ref);
  }

  private async container(principal: Principal, id: string): Promise<ContainerRecord> {
    const record = await this.options.store.getContainer(id);
    if (!record) throw new NotFoundError("container", id, `No such container: ${id}`);
    if (!principal.admin && record.owner !== principal.name)
      throw new PermissionDeniedError(`${principal.name} may not access container ${id}`);
    return record;
  }
}

/** Two mounts at one path, or one inside another, would hide each other: refused before anything starts. */
function checkMountPaths(diskPath: string | undefined, volumePaths: readonly string[]): void {
  const paths = [...(diskPath !== undefined ? [diskPath] : []), ...volumePaths].map((p) =>
    p.replace(/\/+$/, ""),
  );
  for (const [i, a] of paths.entries()) {
    if (a === "") throw new ValidationError("volumes", "a disk cannot be mounted at /");
    for (const b of paths.slice(i + 1)) {
      if (a === b || b.startsWith(`${a}/`) || a.startsWith(`${b}/`))
        throw new ValidationError("volumes", `mounts at ${a} and ${b} overlap`);
    }
  }
}

/**
 * A start the engine refused for what the request asked (a 4xx of its API: a limit out of
 * its range, a port it cannot publish) is the client's error; anything else stays as it is.
 */
function engineRefusal(err: unknown): unknown {
  if (err instanceof AffinetesError) return err;
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === "number" && status >= 400 && status < 500)
    return new ValidationError("container", `the engine refused it: ${(err as Error).message}`);
  return err;
}

/** The shell script a container runs: its initialization script, then its command. */
function taskScript(request: ContainerRequest): string | undefined {
  if (request.command === undefined && request.initScript === undefined) return undefined;
  if (request.initScript === undefined) return request.command;
  if (request.command === undefined) {
    throw new ValidationError(
      "initScript",
      "an initialization script runs before a command: give command too",
    );
  }
  return `set -e\n${request.initScript}\nset +e\n${request.command}`;
}

function diskView(disk: DiskRecord): DiskView {
  const { location: _location, createdAt, ...rest } = disk;
  return { ...rest, createdAt: new Date(createdAt).toISOString() };
}

function containerView(record: ContainerRecord): ContainerView {
  const { runtimeId: _runtimeId, createdAt, finishedAt, ...rest } = record;
  return {
    ...rest,
    createdAt: new Date(createdAt).toISOString(),
    finishedAt: finishedAt !== undefined ? new Date(finishedAt).toISOString() : null,
  };
}
