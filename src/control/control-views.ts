import type { ContainerRecord, DiskRecord } from "./control-store.js";

/** Where a container's disk is mounted unless it says otherwise. */
export const DEFAULT_DISK_PATH = "/mnt/disk";

/** A disk's id; anything else given where a disk is expected is a name (`name` or `owner/name`). */
export const DISK_ID = /^disk_[0-9a-f]{16}$/;

/** A disk as clients see it. */
export type DiskView = Omit<DiskRecord, "location" | "createdAt"> & { createdAt: string };

/** A container as clients see it. */
export type ContainerView = Omit<ContainerRecord, "runtimeId" | "createdAt" | "finishedAt"> & {
  createdAt: string;
  finishedAt: string | null;
};

export function diskView(disk: DiskRecord): DiskView {
  const { location: _location, createdAt, ...rest } = disk;
  return { ...rest, createdAt: new Date(createdAt).toISOString() };
}

export function containerView(record: ContainerRecord): ContainerView {
  const { runtimeId: _runtimeId, createdAt, finishedAt, ...rest } = record;
  return {
    ...rest,
    createdAt: new Date(createdAt).toISOString(),
    finishedAt: finishedAt !== undefined ? new Date(finishedAt).toISOString() : null,
  };
}
