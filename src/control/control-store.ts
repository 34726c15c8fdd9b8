import type { NetworkPolicy } from "../runtime/network-policy.js";

/** Access of a principal (an API key's owner) to a disk. */
export type DiskAccess = "read" | "write";

/** What the control plane records about a disk; it must survive a restart. */
export interface DiskRecord {
  /** `disk_<hex>`. */
  id: string;
  /** Unique among the disks of its owner (two principals may each have a disk `data`). */
  name: string;
  /** Where its files live: `local` is a folder on the server host. */
  backend: "local";
  /** The backend's location of the files (the folder, for `local`). */
  location: string;
  /** The principal that created it: it has write access and grants access to others. */
  owner: string;
  /** Other principals' access (own properties only: read it with `diskAccess`). */
  users: Record<string, DiskAccess>;
  createdAt: number;
}

/** A volume mounted into a container besides its disk. */
export interface VolumeMount {
  /** Path inside the container. */
  path: string;
  diskId: string;
  readOnly: boolean;
}

export type ContainerStatus = "creating" | "running" | "exited" | "stopped" | "failed";

/** What the control plane records about a container; it must survive a restart. */
export interface ContainerRecord {
  /** `ctr_<hex>`. */
  id: string;
  /** The principal that created it. */
  owner: string;
  /** The disk mounted at `diskPath`, if any. */
  diskId: string | undefined;
  diskPath: string;
  volumes: VolumeMount[];
  image: string;
  /** Shell command it runs; undefined: the image's own command (long-running). */
  command: string | undefined;
  /** Shell script run before the command. */
  initScript: string | undefined;
  env: Record<string, string>;
  metadata: Record<string, string>;
  vcpuCount: number | undefined;
  memSizeMiB: number | undefined;
  /** Container ports published on the server host, with the URL each is reached at once running. */
  ports: Array<{ port: number; url: string | undefined }>;
  /** What it may reach on the network. */
  network: NetworkPolicy;
  status: ContainerStatus;
  exitCode: number | undefined;
  /** Why it failed, when it did. */
  error: string | undefined;
  /** The runtime's id (Docker container id) once created. */
  runtimeId: string | undefined;
  createdAt: number;
  finishedAt: number | undefined;
}

/** Which containers `listContainers` returns; every given field must match (metadata: every pair). */
export interface ContainerFilter {
  owner?: string;
  diskId?: string;
  status?: ContainerStatus;
  metadata?: Record<string, string>;
}

/**
 * The control plane's store extension point: SQLite (embedded default) and PostgreSQL
 * implement it, and both pass test/control/store/control-store-conformance.ts.
 */
export interface ControlStore {
  /** Records a disk; `ConflictError` when its owner has a disk of that name (or the id is taken). */
  createDisk(disk: DiskRecord): Promise<void>;
  getDisk(id: string): Promise<DiskRecord | undefined>;
  /** The disk `name` of `owner`: names are unique per owner, not globally. */
  getDiskByName(owner: string, name: string): Promise<DiskRecord | undefined>;
  /** All disks, or those `principal` owns or was granted, in creation order. */
  listDisks(filter?: { principal?: string }): Promise<DiskRecord[]>;
  /** Replaces a disk's authorized users; false when there is no such disk. */
  setDiskUsers(id: string, users: Record<string, DiskAccess>): Promise<boolean>;
  /** False when there was none. */
  deleteDisk(id: string): Promise<boolean>;

  createContainer(container: ContainerRecord): Promise<void>;
  getContainer(id: string): Promise<ContainerRecord | undefined>;
  /** In creation order. */
  listContainers(filter?: ContainerFilter): Promise<ContainerRecord[]>;
  /** Updates fields of a recorded container; false when there is none. */
  updateContainer(
    id: string,
    patch: Partial<
      Pick<ContainerRecord, "status" | "exitCode" | "error" | "runtimeId" | "ports" | "finishedAt">
    >,
  ): Promise<boolean>;
  deleteContainer(id: string): Promise<boolean>;
  /** Containers not yet finished (creating or running) that mount disk `diskId` (as disk or volume). */
  containersUsingDisk(diskId: string): Promise<ContainerRecord[]>;
  close(): Promise<void>;
}

/**
 * What `principal` was granted on `disk` (besides ownership): an own property of `users`
 * only, so a principal named `constructor` or `__proto__` is granted nothing by
 * `Object.prototype`.
 */
export function diskAccess(disk: Pick<DiskRecord, "users">, principal: string): DiskAccess | undefined {
  if (!Object.hasOwn(disk.users, principal)) return undefined;
  const access: unknown = disk.users[principal];
  return access === "read" || access === "write" ? access : undefined;
}
