import type { Readable } from "node:stream";
import type { ContainerView, DiskView } from "../control-plane.js";
import type { DiskEntry } from "../disk-files.js";
import type { ContainerStatus, DiskAccess } from "../control-store.js";
import { NotFoundError } from "../../errors.js";
import type { Image } from "../../image/image-builder.js";
import type { NetworkPolicy } from "../../runtime/network-policy.js";
import type { ClientOptions } from "./api-client.js";
import { ApiClient } from "./api-client.js";
import { ContainerHandle } from "./container-handle.js";
import type { Volume } from "./volume.js";

export type { ClientOptions } from "./api-client.js";
export type { ContainerView as ContainerInfo, DiskView as DiskInfo } from "../control-plane.js";
export type { DiskEntry } from "../disk-files.js";

/** An image: a reference the service's engine has, or an `Image` (built there before use, once). */
export type ImageSource = string | Image;

/** What a new container runs, where, and with what. */
export interface ContainerOptions {
  /**
   * Disk mounted at `diskPath`: its id, `owner/name` (a disk granted to you), or the name
   * of a disk you own (a bare name never means another principal's disk).
   */
  disk?: string;
  /** Default `/mnt/disk`. */
  diskPath?: string;
  /** Further disks, by path inside the container. */
  volumes?: Record<string, Volume>;
  image: ImageSource;
  /** Shell command; without one, the image's own command runs (long-running services). */
  command?: string;
  /** Shell script run before the command (the command does not run when it fails). */
  initScript?: string;
  env?: Record<string, string>;
  /** Free-form labels to find it by (`list({ metadata })`). */
  metadata?: Record<string, string>;
  vcpuCount?: number;
  memSizeMiB?: number;
  /** Container ports published on the server host's loopback; their URLs are in `info.ports`. */
  ports?: number[];
  /** What it may reach: `"none"`, `"full"`, or `{ allow: ["host or CIDR[:port]", ...] }`; default the service's. */
  network?: NetworkPolicy;
}

/** Who the client's API key says it is. */
export interface PrincipalInfo {
  name: string;
  admin: boolean;
}

/** Disks: folders on the server that containers mount. */
export class Disks {
  constructor(private readonly api: ApiClient) {}

  create(options: { name: string }): Promise<DiskView> {
    return this.api.json({ method: "POST", path: "/v1/disks", json: { name: options.name } });
  }

  async list(): Promise<DiskView[]> {
    return (await this.api.json<{ disks: DiskView[] }>({ method: "GET", path: "/v1/disks" })).disks;
  }

  /** By id, `owner/name`, or the name of a disk you own. */
  get(disk: string): Promise<DiskView> {
    return this.api.json({ method: "GET", path: `/v1/disks/${encodeURIComponent(disk)}` });
  }

  /** Refused (409) while a container mounts it, unless `force` (which stops those containers). */
  async delete(disk: string, options: { force?: boolean } = {}): Promise<void> {
    await this.api.json({
      method: "DELETE",
      path: `/v1/disks/${encodeURIComponent(disk)}`,
      query: { force: options.force ? "true" : undefined },
    });
  }

  /** Replaces who besides the owner may use the disk: `{ alice: "read", bob: "write" }`. */
  setUsers(disk: string, users: Record<string, DiskAccess>): Promise<DiskView> {
    return this.api.json({
      method: "PUT",
      path: `/v1/disks/${encodeURIComponent(disk)}/users`,
      json: { users },
    });
  }

  async readDirectory(disk: string, path = "/"): Promise<DiskEntry[]> {
    const res = await this.api.json<{ entries: DiskEntry[] }>({
      method: "GET",
      path: `/v1/disks/${encodeURIComponent(disk)}/files`,
      query: { path },
    });
    return res.entries;
  }

  /** A file's content. */
  async readFile(disk: string, path: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    const body = await this.api.stream({
      method: "GET",
      path: `/v1/disks/${encodeURIComponent(disk)}/files/content`,
      query: { path },
    });
    for await (const chunk of body) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  /** Removes a file, or a folder with its content; false when there was none. */
  async deleteFile(disk: string, path: string): Promise<boolean> {
    const res = await this.api.json<{ deleted: boolean }>({
      method: "DELETE",
      path: `/v1/disks/${encodeURIComponent(disk)}/files`,
      query: { path },
    });
    return res.deleted;
  }

  /** Writes a file (its folders are created); returns its size. */
  async writeFile(disk: string, path: string, content: string | Uint8Array | Readable): Promise<number> {
    const res = await this.api.json<{ size: number }>({
      method: "PUT",
      path: `/v1/disks/${encodeURIComponent(disk)}/files/content`,
      query: { path },
      body: content,
    });
    return res.size;
  }
}

/** Images built by the service's engine from `Image` definitions. */
export class Images {
  constructor(private readonly api: ApiClient) {}

  /**
   * The service's tag of `image`: built there, from a context this client packs and
   * uploads, unless the service has it already (same content, same tag: built once).
   */
  async ensure(image: Image): Promise<string> {
    const hash = await image.contentHash();
    const known = await this.api
      .json<{ tag: string }>({ method: "GET", path: `/v1/images/${hash}` })
      .catch((err: unknown) => {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      });
    if (known) return known.tag;
    const { hash: packed, context } = await image.buildContext(); // packed only when needed
    const built = await this.api.json<{ tag: string }>({
      method: "PUT",
      path: `/v1/images/${packed}`,
      body: context,
      contentType: "application/x-tar",
      long: true, // a build takes as long as it takes
    });
    return built.tag;
  }
}

/** Containers: run a command (or a service) with a disk mounted. */
export class Containers {
  constructor(
    private readonly api: ApiClient,
    private readonly images: Images,
  ) {}

  async create(options: ContainerOptions): Promise<ContainerHandle> {
    const image = typeof options.image === "string" ? options.image : await this.images.ensure(options.image);
    const volumes = options.volumes
      ? Object.fromEntries(Object.entries(options.volumes).map(([path, v]) => [path, v.toJSON()]))
      : undefined;
    const info = await this.api.json<ContainerView>({
      method: "POST",
      path: "/v1/containers",
      json: { ...options, image, ...(volumes ? { volumes } : {}) },
    });
    return new ContainerHandle(this.api, info);
  }

  async list(filter: { metadata?: Record<string, string>; status?: ContainerStatus; disk?: string } = {}) {
    const query: Record<string, string | undefined> = { status: filter.status, disk: filter.disk };
    for (const [key, value] of Object.entries(filter.metadata ?? {})) query[`metadata.${key}`] = value;
    const res = await this.api.json<{ containers: ContainerView[] }>({
      method: "GET",
      path: "/v1/containers",
      query,
    });
    return res.containers.map((info) => new ContainerHandle(this.api, info));
  }

  async get(id: string): Promise<ContainerHandle> {
    const info = await this.api.json<ContainerView>({
      method: "GET",
      path: `/v1/containers/${encodeURIComponent(id)}`,
    });
    return new ContainerHandle(this.api, info);
  }
}

/**
 * The control plane's client: disks and containers of one `afs serve`.
 *
 * ```ts
 * await using client = new Client({ url: "http://127.0.0.1:8008", apiKey });
 * const disk = await client.disks.create({ name: "datasets" });
 * const c = await client.containers.create({ disk: disk.id, image: "python:3.12-slim", command: "ls /mnt/disk" });
 * await c.wait();
 * ```
 */
export class Client implements AsyncDisposable {
  readonly disks: Disks;
  readonly containers: Containers;
  readonly images: Images;
  private readonly api: ApiClient;

  constructor(options: ClientOptions = {}) {
    this.api = new ApiClient(options);
    this.disks = new Disks(this.api);
    this.images = new Images(this.api);
    this.containers = new Containers(this.api, this.images);
  }

  get url(): string {
    return this.api.url;
  }

  /** The principal the service knows this client's key as. */
  whoami(): Promise<PrincipalInfo> {
    return this.api.json({ method: "GET", path: "/v1/whoami" });
  }

  /** Closes the connections. Idempotent. */
  async close(): Promise<void> {
    await this.api.close().catch(() => undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
