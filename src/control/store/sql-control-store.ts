import { ConflictError } from "../../errors.js";
import type { NetworkPolicy } from "../../runtime/network-policy.js";
import type { Database } from "../../store/database.js";
import { migrate } from "../../store/migrate.js";
import { openOwning } from "../../store/open-database.js";
import { SqlParams } from "../../store/sql-params.js";
import { SqlStore } from "../../store/sql-store.js";
import type {
  ContainerFilter,
  ContainerRecord,
  ControlStore,
  DiskAccess,
  DiskRecord,
} from "../control-store.js";
import { CONTROL_TABLES } from "./control-migrations.js";

interface DiskRow {
  id: string;
  name: string;
  backend: DiskRecord["backend"];
  location: string;
  owner: string;
  users: string;
  created_at: number;
}

interface ContainerRow {
  id: string;
  owner: string;
  disk_id: string | null;
  disk_path: string;
  volumes: string;
  image: string;
  command: string | null;
  init_script: string | null;
  env: string;
  metadata: string;
  vcpu_count: number | null;
  mem_size_mib: number | null;
  ports: string;
  network: string;
  status: ContainerRecord["status"];
  exit_code: number | null;
  error: string | null;
  runtime_id: string | null;
  created_at: number;
  finished_at: number | null;
}

type ContainerPatch = Parameters<ControlStore["updateContainer"]>[1];

/** The patchable fields and their columns; nullable ones are cleared by a present `undefined`. */
const PATCH_COLUMNS = {
  status: { column: "status", nullable: false },
  exitCode: { column: "exit_code", nullable: true },
  error: { column: "error", nullable: true },
  runtimeId: { column: "runtime_id", nullable: true },
  ports: { column: "ports", nullable: false },
  finishedAt: { column: "finished_at", nullable: true },
} as const satisfies Record<keyof ContainerPatch, { column: string; nullable: boolean }>;

const INSERT_CONTAINER = `INSERT INTO affinetes_containers (id, owner, disk_id, disk_path, volumes, image, command,
  init_script, env, metadata, vcpu_count, mem_size_mib, ports, network, status, exit_code, error, runtime_id,
  created_at, finished_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`;

/**
 * The control plane's disks and containers, in SQLite or PostgreSQL. Every write is one
 * statement, and a disk's name is unique per owner by constraint (a principal can never
 * take another's name, nor be handed another's disk by naming it), so processes sharing
 * the database need no lock between them.
 */
export class SqlControlStore extends SqlStore implements ControlStore {
  /** The store on the service's database, its tables migrated first; closing it leaves the database open. */
  static async open(db: Database, options: { ownsDatabase?: boolean } = {}): Promise<SqlControlStore> {
    await migrate(db, CONTROL_TABLES);
    return new SqlControlStore(db, options.ownsDatabase ?? false);
  }

  async createDisk(disk: DiskRecord): Promise<void> {
    try {
      await this.db.run(
        `INSERT INTO affinetes_disks (id, name, backend, location, owner, users, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [
          disk.id,
          disk.name,
          disk.backend,
          disk.location,
          disk.owner,
          JSON.stringify(disk.users),
          disk.createdAt,
        ],
      );
    } catch (err) {
      if (!this.db.dialect.isUniqueViolation(err)) throw err;
      const byName = await this.getDiskByName(disk.owner, disk.name);
      throw new ConflictError("disk", byName ? disk.name : disk.id);
    }
  }

  async getDisk(id: string): Promise<DiskRecord | undefined> {
    const [row] = await this.db.query<DiskRow>("SELECT * FROM affinetes_disks WHERE id = $1", [id]);
    return row ? diskFromRow(row) : undefined;
  }

  async getDiskByName(owner: string, name: string): Promise<DiskRecord | undefined> {
    const [row] = await this.db.query<DiskRow>(
      "SELECT * FROM affinetes_disks WHERE owner = $1 AND name = $2",
      [owner, name],
    );
    return row ? diskFromRow(row) : undefined;
  }

  async listDisks(filter: { principal?: string } = {}): Promise<DiskRecord[]> {
    const rows =
      filter.principal === undefined
        ? await this.db.query<DiskRow>("SELECT * FROM affinetes_disks ORDER BY created_at, seq")
        : await this.db.query<DiskRow>(
            `SELECT * FROM affinetes_disks WHERE owner = $1 OR ${this.db.dialect.jsonHasKey("users", "$1")}
             ORDER BY created_at, seq`,
            [filter.principal],
          );
    return rows.map(diskFromRow);
  }

  async setDiskUsers(id: string, users: Record<string, DiskAccess>): Promise<boolean> {
    return (
      (await this.db.run("UPDATE affinetes_disks SET users = $2 WHERE id = $1", [
        id,
        JSON.stringify(users),
      ])) > 0
    );
  }

  async deleteDisk(id: string): Promise<boolean> {
    return (await this.db.run("DELETE FROM affinetes_disks WHERE id = $1", [id])) > 0;
  }

  async createContainer(c: ContainerRecord): Promise<void> {
    try {
      await this.db.run(INSERT_CONTAINER, [
        c.id,
        c.owner,
        c.diskId,
        c.diskPath,
        JSON.stringify(c.volumes),
        c.image,
        c.command,
        c.initScript,
        JSON.stringify(c.env),
        JSON.stringify(c.metadata),
        c.vcpuCount,
        c.memSizeMiB,
        JSON.stringify(c.ports),
        JSON.stringify(c.network),
        c.status,
        c.exitCode,
        c.error,
        c.runtimeId,
        c.createdAt,
        c.finishedAt,
      ]);
    } catch (err) {
      if (this.db.dialect.isUniqueViolation(err)) throw new ConflictError("container", c.id);
      throw err;
    }
  }

  async getContainer(id: string): Promise<ContainerRecord | undefined> {
    const [row] = await this.db.query<ContainerRow>("SELECT * FROM affinetes_containers WHERE id = $1", [id]);
    return row ? containerFromRow(row) : undefined;
  }

  async listContainers(filter: ContainerFilter = {}): Promise<ContainerRecord[]> {
    const params = new SqlParams();
    const where = ["TRUE"];
    if (filter.owner !== undefined) where.push(`owner = ${params.add(filter.owner)}`);
    if (filter.diskId !== undefined) where.push(`disk_id = ${params.add(filter.diskId)}`);
    if (filter.status !== undefined) where.push(`status = ${params.add(filter.status)}`);
    // one exact key/value test per pair, bound as parameters: keys never become JSON paths
    for (const [key, value] of Object.entries(filter.metadata ?? {}))
      where.push(this.db.dialect.jsonHasText("metadata", params.add(key), params.add(value)));
    const rows = await this.db.query<ContainerRow>(
      `SELECT * FROM affinetes_containers WHERE ${where.join(" AND ")} ORDER BY created_at, seq`,
      params.values,
    );
    return rows.map(containerFromRow);
  }

  async updateContainer(id: string, patch: ContainerPatch): Promise<boolean> {
    const params = new SqlParams(id);
    const sets: string[] = [];
    for (const [field, { column, nullable }] of Object.entries(PATCH_COLUMNS)) {
      if (!Object.hasOwn(patch, field)) continue;
      const value = patch[field as keyof ContainerPatch];
      if (value === undefined && !nullable) continue;
      sets.push(`${column} = ${params.add(field === "ports" ? JSON.stringify(value) : value)}`);
    }
    if (!sets.length)
      return (
        (await this.db.query("SELECT 1 AS found FROM affinetes_containers WHERE id = $1", [id])).length > 0
      );
    return (
      (await this.db.run(`UPDATE affinetes_containers SET ${sets.join(", ")} WHERE id = $1`, params.values)) >
      0
    );
  }

  async deleteContainer(id: string): Promise<boolean> {
    return (await this.db.run("DELETE FROM affinetes_containers WHERE id = $1", [id])) > 0;
  }

  async containersUsingDisk(diskId: string): Promise<ContainerRecord[]> {
    // volumes are matched on their parsed diskId, never on the JSON text (disk_ab is not disk_abc)
    const rows = await this.db.query<ContainerRow>(
      `SELECT * FROM affinetes_containers
       WHERE status IN ('creating', 'running')
         AND (disk_id = $1 OR ${this.db.dialect.jsonArrayHasField("volumes", "diskId", "$1")})
       ORDER BY created_at, seq`,
      [diskId],
    );
    return rows.map(containerFromRow);
  }
}

/** The control plane's store on a database of its own at `location` (a SQLite file or a `postgres://` URL). */
export function openControlStore(location: string): Promise<ControlStore> {
  return openOwning(location, SqlControlStore.open);
}

function diskFromRow(row: DiskRow): DiskRecord {
  return {
    id: row.id,
    name: row.name,
    backend: row.backend,
    location: row.location,
    owner: row.owner,
    users: JSON.parse(row.users) as Record<string, DiskAccess>,
    createdAt: row.created_at,
  };
}

function containerFromRow(row: ContainerRow): ContainerRecord {
  return {
    id: row.id,
    owner: row.owner,
    diskId: row.disk_id ?? undefined,
    diskPath: row.disk_path,
    volumes: JSON.parse(row.volumes) as ContainerRecord["volumes"],
    image: row.image,
    command: row.command ?? undefined,
    initScript: row.init_script ?? undefined,
    env: JSON.parse(row.env) as Record<string, string>,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    vcpuCount: row.vcpu_count ?? undefined,
    memSizeMiB: row.mem_size_mib ?? undefined,
    // JSON has no undefined: a port not yet reachable is stored without `url`
    ports: (JSON.parse(row.ports) as Array<{ port: number; url?: string | null }>).map((p) => ({
      port: p.port,
      url: p.url ?? undefined,
    })),
    network: JSON.parse(row.network) as NetworkPolicy,
    status: row.status,
    exitCode: row.exit_code ?? undefined,
    error: row.error ?? undefined,
    runtimeId: row.runtime_id ?? undefined,
    createdAt: row.created_at,
    finishedAt: row.finished_at ?? undefined,
  };
}
