import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import type { Principal } from "../auth/principals.js";
import { ConflictError, NotFoundError, PermissionDeniedError, ValidationError } from "../errors.js";
import type { ControlStore, DiskAccess, DiskRecord } from "./control-store.js";
import { diskAccess } from "./control-store.js";
import type { DiskView } from "./control-views.js";
import { DISK_ID, diskView } from "./control-views.js";
import type { DiskEntry } from "./disk-files.js";
import { DEFAULT_MAX_FILE_BYTES, DiskFiles } from "./disk-files.js";

/** What the disks part of the control plane needs. */
export interface ControlDisksOptions {
  store: ControlStore;
  /** Where local disks keep their folders. */
  disksRoot: string;
  /** Cap of one uploaded file; default 1 GiB. */
  maxFileBytes?: number | undefined;
  /** Stops a container (as the admin): a forced disk deletion stops those mounting it. */
  stopContainer: (id: string) => Promise<unknown>;
}

/**
 * The control plane's disks: folders on the server host with per-principal access.
 *
 * A disk is named, wherever a disk is expected, by its id (`disk_<hex>`), by `owner/name`,
 * or by a bare `name`, which means the caller's own disk of that name only: names are
 * unique per owner, so a disk someone else made and granted can never stand in for one's
 * own by sharing its name.
 */
export class ControlDisks {
  private readonly files: DiskFiles;

  constructor(private readonly options: ControlDisksOptions) {
    this.files = new DiskFiles(options.disksRoot);
  }

  async create(principal: Principal, name: string): Promise<DiskView> {
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

  async list(principal: Principal): Promise<DiskView[]> {
    const disks = await this.options.store.listDisks(principal.admin ? {} : { principal: principal.name });
    return disks.map(diskView);
  }

  async get(principal: Principal, idOrName: string): Promise<DiskView> {
    return diskView(await this.resolve(principal, idOrName, "read"));
  }

  /** Grants access (owner or admin only): `users` replaces the disk's authorized users. */
  async setUsers(
    principal: Principal,
    idOrName: string,
    users: Record<string, DiskAccess>,
  ): Promise<DiskView> {
    const disk = await this.resolve(principal, idOrName, "read");
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
  async delete(principal: Principal, idOrName: string, options: { force?: boolean } = {}): Promise<void> {
    const disk = await this.resolve(principal, idOrName, "read");
    if (!principal.admin && disk.owner !== principal.name)
      throw new PermissionDeniedError(`only the owner of disk ${disk.name} may delete it`);
    const users = await this.options.store.containersUsingDisk(disk.id);
    if (users.length && !options.force) {
      throw new ConflictError(
        "mount of disk",
        `${disk.name} by ${users.map((c) => c.id).join(", ")} (stop them, or delete with force)`,
      );
    }
    for (const container of users) await this.options.stopContainer(container.id);
    await this.options.store.deleteDisk(disk.id);
    await this.files.remove(disk.location);
  }

  async readDirectory(principal: Principal, idOrName: string, path: string): Promise<DiskEntry[]> {
    const disk = await this.resolve(principal, idOrName, "read");
    return this.files.list(disk.location, path);
  }

  async readFile(
    principal: Principal,
    idOrName: string,
    path: string,
  ): Promise<{ stream: Readable; size: number }> {
    const disk = await this.resolve(principal, idOrName, "read");
    return this.files.read(disk.location, path);
  }

  /** Writes a file from a stream; past `maxFileBytes` a PayloadTooLargeError, and nothing is kept. */
  async writeFile(
    principal: Principal,
    idOrName: string,
    path: string,
    content: AsyncIterable<Uint8Array>,
  ): Promise<number> {
    const disk = await this.resolve(principal, idOrName, "write");
    return this.files.write(disk.location, path, content, { maxBytes: this.maxFileBytes });
  }

  /** The cap of one uploaded file. */
  get maxFileBytes(): number {
    return this.options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  }

  /** Removes a file or folder of the disk; false when there was none. */
  async deleteFile(principal: Principal, idOrName: string, path: string): Promise<boolean> {
    const disk = await this.resolve(principal, idOrName, "write");
    return this.files.delete(disk.location, path);
  }

  /** A disk by reference (see the class) that `principal` may access as `need`s; else NotFound / PermissionDenied. */
  async resolve(principal: Principal, ref: string, need: DiskAccess): Promise<DiskRecord> {
    const disk = await this.find(principal, ref);
    if (!disk) throw new NotFoundError("disk", ref, `No such disk: ${ref}`);
    if (principal.admin || disk.owner === principal.name) return disk;
    const access = diskAccess(disk, principal.name);
    if (!access) throw new PermissionDeniedError(`${principal.name} has no access to disk ${disk.name}`);
    if (need === "write" && access !== "write")
      throw new PermissionDeniedError(`${principal.name} may only read disk ${disk.name}`);
    return disk;
  }

  /** `disk_<hex>` is an id; `owner/name` a disk of that owner; a bare name the caller's own only. */
  private async find(principal: Principal, ref: string): Promise<DiskRecord | undefined> {
    if (DISK_ID.test(ref)) return this.options.store.getDisk(ref);
    const slash = ref.lastIndexOf("/");
    if (slash > 0) return this.options.store.getDiskByName(ref.slice(0, slash), ref.slice(slash + 1));
    return this.options.store.getDiskByName(principal.name, ref);
  }
}
