import pg from "pg";
import { ConflictError } from "../../errors.js";
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
  users: Record<string, DiskAccess>;
  created_at: string;
}

interface ContainerRow {
  id: string;
  owner: string;
  disk_id: string | null;
  disk_path: string;
  volumes: VolumeMount[];
  image: string;
  command: string | null;
  init_script: string | null;
  env: Record<string, string>;
  metadata: Record<string, string>;
  vcpu_count: number | null;
  mem_size_mib: number | null;
  ports: Array<{ port: number; url?: string | null }>;
  network: NetworkPolicy;
  status: ContainerStatus;
  exit_code: number | null;
  error: string | null;
  runtime_id: string | null;
  created_at: string;
  finished_at: string | null;
}

type ContainerPatch = Parameters<ControlStore["updateContainer"]>[1];

// `seq` orders records created in the same millisecond by insertion.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS affinetes_disks (
  seq BIGSERIAL,
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  backend TEXT NOT NULL,
  location TEXT NOT NULL,
  owner TEXT NOT NULL,
  users JSONB NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS affinetes_disks_owner ON affinetes_disks (owner);
CREATE TABLE IF NOT EXISTS affinetes_containers (
  seq BIGSERIAL,
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  disk_id TEXT,
  disk_path TEXT NOT NULL,
  volumes JSONB NOT NULL,
  image TEXT NOT NULL,
  command TEXT,
  init_script TEXT,
  env JSONB NOT NULL,
  metadata JSONB NOT NULL,
  vcpu_count DOUBLE PRECISION,
  mem_size_mib DOUBLE PRECISION,
  ports JSONB NOT NULL,
  network JSONB NOT NULL DEFAULT '"full"',
  status TEXT NOT NULL,
  exit_code INTEGER,
  error TEXT,
  runtime_id TEXT,
  created_at BIGINT NOT NULL,
  finished_at BIGINT
);
CREATE INDEX IF NOT EXISTS affinetes_containers_owner ON affinetes_containers (owner);
CREATE INDEX IF NOT EXISTS affinetes_containers_disk_id ON affinetes_containers (disk_id);
CREATE INDEX IF NOT EXISTS affinetes_containers_status ON affinetes_containers (status);
-- earlier layouts: disk names were unique globally (now per owner); containers had no network.
-- Checked first: ALTER TABLE locks the table even when it changes nothing, and replicas start often.
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'affinetes_disks_name_unique'
             AND conrelid = 'affinetes_disks'::regclass) THEN
    ALTER TABLE affinetes_disks DROP CONSTRAINT affinetes_disks_name_unique;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'affinetes_disks_owner_name_unique'
                 AND conrelid = 'affinetes_disks'::regclass) THEN
    ALTER TABLE affinetes_disks ADD CONSTRAINT affinetes_disks_owner_name_unique UNIQUE (owner, name);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'affinetes_containers'::regclass
                 AND attname = 'network' AND NOT attisdropped) THEN
    ALTER TABLE affinetes_containers ADD COLUMN network JSONB NOT NULL DEFAULT '"full"';
  END IF;
END $$;
`;

/**
 * Any constant: replicas starting together create the schema one at a time (concurrent
 * CREATE TABLE IF NOT EXISTS can still collide in the catalog).
 */
const SCHEMA_LOCK = 0x61666373; // "afcs"

/** The patchable fields and their columns; nullable ones are cleared by a present `undefined`. */
const PATCH_COLUMNS = {
  status: { column: "status", nullable: false },
  exitCode: { column: "exit_code", nullable: true },
  error: { column: "error", nullable: true },
  runtimeId: { column: "runtime_id", nullable: true },
  ports: { column: "ports", nullable: false },
  finishedAt: { column: "finished_at", nullable: true },
} as const satisfies Record<keyof ContainerPatch, { column: string; nullable: boolean }>;

const UNIQUE_VIOLATION = "23505";

/**
 * The control plane's store for several service replicas: PostgreSQL. Every write is one
 * statement, and a disk's name is unique per owner by constraint, so replicas sharing the database
 * need no lock between them.
 */
export class PostgresControlStore implements ControlStore {
  private constructor(private readonly pool: pg.Pool) {}

  /** Connects (`postgres://user:pass@host:port/db`) and creates the tables when missing. */
  static async connect(url: string): Promise<PostgresControlStore> {
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    try {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        await client.query("SELECT pg_advisory_xact_lock($1)", [SCHEMA_LOCK]);
        await client.query(SCHEMA);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    } catch (err) {
      await pool.end();
      throw err;
    }
    return new PostgresControlStore(pool);
  }

  async createDisk(disk: DiskRecord): Promise<void> {
    try {
      await this.pool.query(
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
      if (isUniqueViolation(err)) {
        const byName = (err as { constraint?: string }).constraint === "affinetes_disks_owner_name_unique";
        throw new ConflictError("disk", byName ? disk.name : disk.id);
      }
      throw err;
    }
  }

  async getDisk(id: string): Promise<DiskRecord | undefined> {
    const { rows } = await this.pool.query<DiskRow>("SELECT * FROM affinetes_disks WHERE id = $1", [id]);
    return rows[0] ? diskFromRow(rows[0]) : undefined;
  }

  async getDiskByName(owner: string, name: string): Promise<DiskRecord | undefined> {
    const { rows } = await this.pool.query<DiskRow>(
      "SELECT * FROM affinetes_disks WHERE owner = $1 AND name = $2",
      [owner, name],
    );
    return rows[0] ? diskFromRow(rows[0]) : undefined;
  }

  async listDisks(filter: { principal?: string } = {}): Promise<DiskRecord[]> {
    const { rows } = await this.pool.query<DiskRow>(
      `SELECT * FROM affinetes_disks
       WHERE $1::text IS NULL OR owner = $1 OR jsonb_exists(users, $1)
       ORDER BY created_at, seq`,
      [filter.principal ?? null],
    );
    return rows.map(diskFromRow);
  }

  async setDiskUsers(id: string, users: Record<string, DiskAccess>): Promise<boolean> {
    const result = await this.pool.query("UPDATE affinetes_disks SET users = $2 WHERE id = $1", [
      id,
      JSON.stringify(users),
    ]);
    return (result.rowCount ?? 0) > 0;
  }

  async deleteDisk(id: string): Promise<boolean> {
    const result = await this.pool.query("DELETE FROM affinetes_disks WHERE id = $1", [id]);
    return (result.rowCount ?? 0) > 0;
  }

  async createContainer(c: ContainerRecord): Promise<void> {
    try {
      await this.pool.query(
        `INSERT INTO affinetes_containers (id, owner, disk_id, disk_path, volumes, image, command, init_script, env,
           metadata, vcpu_count, mem_size_mib, ports, network, status, exit_code, error, runtime_id, created_at,
           finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
        [
          c.id,
          c.owner,
          c.diskId ?? null,
          c.diskPath,
          JSON.stringify(c.volumes),
          c.image,
          c.command ?? null,
          c.initScript ?? null,
          JSON.stringify(c.env),
          JSON.stringify(c.metadata),
          c.vcpuCount ?? null,
          c.memSizeMiB ?? null,
          JSON.stringify(c.ports),
          JSON.stringify(c.network),
          c.status,
          c.exitCode ?? null,
          c.error ?? null,
          c.runtimeId ?? null,
          c.createdAt,
          c.finishedAt ?? null,
        ],
      );
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError("container", c.id);
      throw err;
    }
  }

  async getContainer(id: string): Promise<ContainerRecord | undefined> {
    const { rows } = await this.pool.query<ContainerRow>("SELECT * FROM affinetes_containers WHERE id = $1", [
      id,
    ]);
    return rows[0] ? containerFromRow(rows[0]) : undefined;
  }

  async listContainers(filter: ContainerFilter = {}): Promise<ContainerRecord[]> {
    const { rows } = await this.pool.query<ContainerRow>(
      `SELECT * FROM affinetes_containers
       WHERE ($1::text IS NULL OR owner = $1) AND ($2::text IS NULL OR disk_id = $2)
         AND ($3::text IS NULL OR status = $3) AND ($4::jsonb IS NULL OR metadata @> $4::jsonb)
       ORDER BY created_at, seq`,
      [
        filter.owner ?? null,
        filter.diskId ?? null,
        filter.status ?? null,
        filter.metadata ? JSON.stringify(filter.metadata) : null,
      ],
    );
    return rows.map(containerFromRow);
  }

  async updateContainer(id: string, patch: ContainerPatch): Promise<boolean> {
    const sets: string[] = [];
    const params: unknown[] = [id];
    for (const [field, { column, nullable }] of Object.entries(PATCH_COLUMNS)) {
      if (!Object.hasOwn(patch, field)) continue;
      const value = patch[field as keyof ContainerPatch];
      if (value === undefined && !nullable) continue;
      params.push(value === undefined ? null : field === "ports" ? JSON.stringify(value) : value);
      sets.push(`${column} = $${params.length}`);
    }
    const result = sets.length
      ? await this.pool.query(`UPDATE affinetes_containers SET ${sets.join(", ")} WHERE id = $1`, params)
      : await this.pool.query("SELECT 1 FROM affinetes_containers WHERE id = $1", params);
    return (result.rowCount ?? 0) > 0;
  }

  async deleteContainer(id: string): Promise<boolean> {
    const result = await this.pool.query("DELETE FROM affinetes_containers WHERE id = $1", [id]);
    return (result.rowCount ?? 0) > 0;
  }

  async containersUsingDisk(diskId: string): Promise<ContainerRecord[]> {
    // Containment on parsed JSON, not a text match: disk_ab does not match disk_abc.
    const { rows } = await this.pool.query<ContainerRow>(
      `SELECT * FROM affinetes_containers
       WHERE status IN ('creating', 'running')
         AND (disk_id = $1 OR volumes @> jsonb_build_array(jsonb_build_object('diskId', $1::text)))
       ORDER BY created_at, seq`,
      [diskId],
    );
    return rows.map(containerFromRow);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === UNIQUE_VIOLATION;
}

function diskFromRow(row: DiskRow): DiskRecord {
  return {
    id: row.id,
    name: row.name,
    backend: row.backend,
    location: row.location,
    owner: row.owner,
    users: row.users,
    createdAt: Number(row.created_at),
  };
}

function containerFromRow(row: ContainerRow): ContainerRecord {
  return {
    id: row.id,
    owner: row.owner,
    diskId: row.disk_id ?? undefined,
    diskPath: row.disk_path,
    volumes: row.volumes,
    image: row.image,
    command: row.command ?? undefined,
    initScript: row.init_script ?? undefined,
    env: row.env,
    metadata: row.metadata,
    vcpuCount: row.vcpu_count ?? undefined,
    memSizeMiB: row.mem_size_mib ?? undefined,
    // JSON has no undefined: a port not yet reachable is stored without `url`.
    ports: row.ports.map((p) => ({ port: p.port, url: p.url ?? undefined })),
    network: row.network,
    status: row.status,
    exitCode: row.exit_code ?? undefined,
    error: row.error ?? undefined,
    runtimeId: row.runtime_id ?? undefined,
    createdAt: Number(row.created_at),
    finishedAt: row.finished_at === null ? undefined : Number(row.finished_at),
  };
}
