import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { ConflictError, InfrastructureError } from "../../errors.js";
import type { NetworkPolicy } from "../../runtime/network-policy.js";
import type {
  ContainerFilter,
  ContainerRecord,
  ContainerStatus,
  ControlStore,
  DiskAccess,
  DiskRecord,
  VolumeMount,
} from "../control-store.js";

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
  status: ContainerStatus;
  exit_code: number | null;
  error: string | null;
  runtime_id: string | null;
  created_at: number;
  finished_at: number | null;
}

type ContainerPatch = Parameters<ControlStore["updateContainer"]>[1];

// Table names differ from SqliteInstanceStore's `instances`: the service opens both on one file.
// A disk's name is unique per owner: a principal can never take another's name, nor be
// handed another's disk by naming it.
const DISKS_TABLE = (name: string) => `
CREATE TABLE IF NOT EXISTS ${name} (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  backend TEXT NOT NULL,
  location TEXT NOT NULL,
  owner TEXT NOT NULL,
  users TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (owner, name)
);`;

const TABLES = `${DISKS_TABLE("disks")}
CREATE TABLE IF NOT EXISTS containers (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  disk_id TEXT,
  disk_path TEXT NOT NULL,
  volumes TEXT NOT NULL,
  image TEXT NOT NULL,
  command TEXT,
  init_script TEXT,
  env TEXT NOT NULL,
  metadata TEXT NOT NULL,
  vcpu_count REAL,
  mem_size_mib REAL,
  ports TEXT NOT NULL,
  network TEXT NOT NULL DEFAULT '"full"',
  status TEXT NOT NULL,
  exit_code INTEGER,
  error TEXT,
  runtime_id TEXT,
  created_at INTEGER NOT NULL,
  finished_at INTEGER
);
`;

const INDEXES = `
CREATE INDEX IF NOT EXISTS disks_owner ON disks (owner);
CREATE INDEX IF NOT EXISTS containers_owner ON containers (owner);
CREATE INDEX IF NOT EXISTS containers_disk_id ON containers (disk_id);
CREATE INDEX IF NOT EXISTS containers_status ON containers (status);
`;

const DISK_COLUMNS = ["id", "name", "backend", "location", "owner", "users", "created_at"];
const CONTAINER_COLUMNS = [
  "id",
  "owner",
  "disk_id",
  "disk_path",
  "volumes",
  "image",
  "command",
  "init_script",
  "env",
  "metadata",
  "vcpu_count",
  "mem_size_mib",
  "ports",
  "network",
  "status",
  "exit_code",
  "error",
  "runtime_id",
  "created_at",
  "finished_at",
];

/** The patchable fields and their columns; nullable ones are cleared by a present `undefined`. */
const PATCH_COLUMNS = {
  status: { column: "status", nullable: false },
  exitCode: { column: "exit_code", nullable: true },
  error: { column: "error", nullable: true },
  runtimeId: { column: "runtime_id", nullable: true },
  ports: { column: "ports", nullable: false },
  finishedAt: { column: "finished_at", nullable: true },
} as const satisfies Record<keyof ContainerPatch, { column: string; nullable: boolean }>;

/**
 * The control plane's embedded store: one SQLite file (WAL), which it can share with
 * `SqliteInstanceStore`. Disk creation runs in an IMMEDIATE transaction, so a name is
 * taken once even when several processes share the file.
 */
export class SqliteControlStore implements ControlStore {
  private readonly db: Database.Database;

  constructor(path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    try {
      this.db.pragma("journal_mode = WAL");
      this.db.pragma("busy_timeout = 10000"); // other processes' writes wait, they do not fail
      this.db.exec(TABLES);
      migrate(this.db); // before the indexes, which would fail on a foreign table first
      this.db.exec(INDEXES);
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  async createDisk(disk: DiskRecord): Promise<void> {
    const create = this.db.transaction(() => {
      if (this.db.prepare("SELECT 1 FROM disks WHERE owner = ? AND name = ?").get(disk.owner, disk.name)) {
        throw new ConflictError("disk", disk.name);
      }
      if (this.db.prepare("SELECT 1 FROM disks WHERE id = ?").get(disk.id)) {
        throw new ConflictError("disk", disk.id);
      }
      this.db
        .prepare(
          `INSERT INTO disks (id, name, backend, location, owner, users, created_at)
           VALUES (@id, @name, @backend, @location, @owner, @users, @created_at)`,
        )
        .run(diskToRow(disk));
    });
    create.immediate();
  }

  async getDisk(id: string): Promise<DiskRecord | undefined> {
    const row = this.db.prepare("SELECT * FROM disks WHERE id = ?").get(id) as DiskRow | undefined;
    return row ? diskFromRow(row) : undefined;
  }

  async getDiskByName(owner: string, name: string): Promise<DiskRecord | undefined> {
    const row = this.db.prepare("SELECT * FROM disks WHERE owner = ? AND name = ?").get(owner, name) as
      DiskRow | undefined;
    return row ? diskFromRow(row) : undefined;
  }

  async listDisks(filter: { principal?: string } = {}): Promise<DiskRecord[]> {
    // json_each compares keys exactly: no JSON path is built from the principal.
    const rows = this.db
      .prepare(
        `SELECT * FROM disks
         WHERE @principal IS NULL OR owner = @principal
           OR EXISTS (SELECT 1 FROM json_each(disks.users) AS u WHERE u.key = @principal)
         ORDER BY created_at, rowid`,
      )
      .all({ principal: filter.principal ?? null }) as DiskRow[];
    return rows.map(diskFromRow);
  }

  async setDiskUsers(id: string, users: Record<string, DiskAccess>): Promise<boolean> {
    return (
      this.db.prepare("UPDATE disks SET users = ? WHERE id = ?").run(JSON.stringify(users), id).changes > 0
    );
  }

  async deleteDisk(id: string): Promise<boolean> {
    return this.db.prepare("DELETE FROM disks WHERE id = ?").run(id).changes > 0;
  }

  async createContainer(container: ContainerRecord): Promise<void> {
    const create = this.db.transaction(() => {
      if (this.db.prepare("SELECT 1 FROM containers WHERE id = ?").get(container.id)) {
        throw new ConflictError("container", container.id);
      }
      this.db
        .prepare(
          `INSERT INTO containers (${CONTAINER_COLUMNS.join(", ")})
           VALUES (${CONTAINER_COLUMNS.map((c) => `@${c}`).join(", ")})`,
        )
        .run(containerToRow(container));
    });
    create.immediate();
  }

  async getContainer(id: string): Promise<ContainerRecord | undefined> {
    const row = this.db.prepare("SELECT * FROM containers WHERE id = ?").get(id) as ContainerRow | undefined;
    return row ? containerFromRow(row) : undefined;
  }

  async listContainers(filter: ContainerFilter = {}): Promise<ContainerRecord[]> {
    const where = [
      "(@owner IS NULL OR owner = @owner)",
      "(@disk_id IS NULL OR disk_id = @disk_id)",
      "(@status IS NULL OR status = @status)",
    ];
    const params: Record<string, string | null> = {
      owner: filter.owner ?? null,
      disk_id: filter.diskId ?? null,
      status: filter.status ?? null,
    };
    // One exact key/value test per pair, bound as parameters: keys never become JSON paths.
    Object.entries(filter.metadata ?? {}).forEach(([key, value], i) => {
      where.push(
        `EXISTS (SELECT 1 FROM json_each(containers.metadata) AS m
                 WHERE m.key = @meta_key_${i} AND m.type = 'text' AND m.value = @meta_value_${i})`,
      );
      params[`meta_key_${i}`] = key;
      params[`meta_value_${i}`] = value;
    });
    const rows = this.db
      .prepare(`SELECT * FROM containers WHERE ${where.join(" AND ")} ORDER BY created_at, rowid`)
      .all(params) as ContainerRow[];
    return rows.map(containerFromRow);
  }

  async updateContainer(id: string, patch: ContainerPatch): Promise<boolean> {
    const sets: string[] = [];
    const params: Record<string, string | number | null> = { id };
    for (const [field, { column, nullable }] of Object.entries(PATCH_COLUMNS)) {
      if (!Object.hasOwn(patch, field)) continue;
      const value = patch[field as keyof ContainerPatch];
      if (value === undefined && !nullable) continue;
      sets.push(`${column} = @${column}`);
      params[column] =
        value === undefined ? null : field === "ports" ? JSON.stringify(value) : (value as string | number);
    }
    if (!sets.length) return Boolean(this.db.prepare("SELECT 1 FROM containers WHERE id = ?").get(id));
    return this.db.prepare(`UPDATE containers SET ${sets.join(", ")} WHERE id = @id`).run(params).changes > 0;
  }

  async deleteContainer(id: string): Promise<boolean> {
    return this.db.prepare("DELETE FROM containers WHERE id = ?").run(id).changes > 0;
  }

  async containersUsingDisk(diskId: string): Promise<ContainerRecord[]> {
    // Volumes are matched on their parsed diskId, never on the JSON text (disk_ab is not disk_abc).
    const rows = this.db
      .prepare(
        `SELECT * FROM containers
         WHERE status IN ('creating', 'running')
           AND (disk_id = @disk_id OR EXISTS (
             SELECT 1 FROM json_each(containers.volumes) AS v WHERE json_extract(v.value, '$.diskId') = @disk_id))
         ORDER BY created_at, rowid`,
      )
      .all({ disk_id: diskId }) as ContainerRow[];
    return rows.map(containerFromRow);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

function diskToRow(disk: DiskRecord): DiskRow {
  return {
    id: disk.id,
    name: disk.name,
    backend: disk.backend,
    location: disk.location,
    owner: disk.owner,
    users: JSON.stringify(disk.users),
    created_at: disk.createdAt,
  };
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

function containerToRow(c: ContainerRecord): ContainerRow {
  return {
    id: c.id,
    owner: c.owner,
    disk_id: c.diskId ?? null,
    disk_path: c.diskPath,
    volumes: JSON.stringify(c.volumes),
    image: c.image,
    command: c.command ?? null,
    init_script: c.initScript ?? null,
    env: JSON.stringify(c.env),
    metadata: JSON.stringify(c.metadata),
    vcpu_count: c.vcpuCount ?? null,
    mem_size_mib: c.memSizeMiB ?? null,
    ports: JSON.stringify(c.ports),
    network: JSON.stringify(c.network),
    status: c.status,
    exit_code: c.exitCode ?? null,
    error: c.error ?? null,
    runtime_id: c.runtimeId ?? null,
    created_at: c.createdAt,
    finished_at: c.finishedAt ?? null,
  };
}

function containerFromRow(row: ContainerRow): ContainerRecord {
  return {
    id: row.id,
    owner: row.owner,
    diskId: row.disk_id ?? undefined,
    diskPath: row.disk_path,
    volumes: JSON.parse(row.volumes) as VolumeMount[],
    image: row.image,
    command: row.command ?? undefined,
    initScript: row.init_script ?? undefined,
    env: JSON.parse(row.env) as Record<string, string>,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    vcpuCount: row.vcpu_count ?? undefined,
    memSizeMiB: row.mem_size_mib ?? undefined,
    ports: portsFromJson(row.ports),
    network: JSON.parse(row.network) as NetworkPolicy,
    status: row.status,
    exitCode: row.exit_code ?? undefined,
    error: row.error ?? undefined,
    runtimeId: row.runtime_id ?? undefined,
    createdAt: row.created_at,
    finishedAt: row.finished_at ?? undefined,
  };
}

/** JSON has no undefined: a port not yet reachable is stored without `url` and read back as undefined. */
function portsFromJson(text: string): ContainerRecord["ports"] {
  return (JSON.parse(text) as Array<{ port: number; url?: string | null }>).map((p) => ({
    port: p.port,
    url: p.url ?? undefined,
  }));
}

/**
 * Brings an earlier layout of these tables up to this one, in one IMMEDIATE transaction
 * (several processes may open the file at once), after refusing a file whose `disks` or
 * `containers` are someone else's tables rather than misreading them:
 * - containers gain `network` (earlier containers had the engine's default, `"full"`);
 * - disks' names, once unique globally, become unique per owner (the table is rebuilt:
 *   SQLite cannot drop a UNIQUE constraint in place).
 */
function migrate(db: Database.Database): void {
  for (const [table, expected] of [
    ["disks", DISK_COLUMNS],
    ["containers", CONTAINER_COLUMNS.filter((c) => c !== "network")],
  ] as const) {
    const missing = expected.filter((c) => !columnsOf(db, table).has(c));
    if (missing.length) {
      throw new InfrastructureError(
        `the SQLite file has a "${table}" table that is not the control plane's (missing ${missing.join(", ")})`,
      );
    }
  }
  const upgrade = db.transaction(() => {
    if (!columnsOf(db, "containers").has("network"))
      db.exec(`ALTER TABLE containers ADD COLUMN network TEXT NOT NULL DEFAULT '"full"'`);
    if (hasUniqueIndexOn(db, "disks", ["name"])) {
      db.exec(DISKS_TABLE("disks_next"));
      db.exec(
        `INSERT INTO disks_next (${DISK_COLUMNS.join(", ")}) SELECT ${DISK_COLUMNS.join(", ")} FROM disks ORDER BY rowid`,
      );
      db.exec("DROP TABLE disks");
      db.exec("ALTER TABLE disks_next RENAME TO disks");
    }
  });
  upgrade.immediate();
}

function columnsOf(db: Database.Database, table: string): Set<string> {
  return new Set((db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name));
}

/** Whether `table` has a UNIQUE index on exactly `columns`. */
function hasUniqueIndexOn(db: Database.Database, table: string, columns: readonly string[]): boolean {
  const indexes = db.prepare(`PRAGMA index_list(${table})`).all() as Array<{ name: string; unique: number }>;
  return indexes.some((index) => {
    if (!index.unique) return false;
    const names = (
      db.prepare("SELECT name FROM pragma_index_info(?)").all(index.name) as Array<{ name: string }>
    ).map((c) => c.name);
    return names.length === columns.length && names.every((n, i) => n === columns[i]);
  });
}
