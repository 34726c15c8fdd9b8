import pg from "pg";
import { ConflictError } from "../../errors.js";
import type { InstanceRecord, InstanceFilter, InstanceStore, ResourceLimits } from "../instance-store.js";
import { INSTANCES_KEY, checkAdmission } from "../instance-store.js";

interface Row {
  run_id: string;
  owner: string;
  principal: string;
  container_name: string | null;
  container_type: string;
  image: string;
  resources: Record<string, number>;
  runtime_id: string | null;
  state: InstanceRecord["state"];
  created_at: string;
  last_used_at: string;
  num_cmd: number;
  config: Record<string, unknown>;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS affinetes_instances (
  run_id TEXT PRIMARY KEY,
  owner TEXT NOT NULL DEFAULT '',
  principal TEXT NOT NULL DEFAULT '',
  container_name TEXT,
  container_type TEXT NOT NULL,
  image TEXT NOT NULL,
  resources JSONB NOT NULL,
  runtime_id TEXT,
  state TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  last_used_at BIGINT NOT NULL,
  num_cmd INTEGER NOT NULL DEFAULT 0,
  config JSONB NOT NULL
);
ALTER TABLE affinetes_instances ADD COLUMN IF NOT EXISTS owner TEXT NOT NULL DEFAULT '';
ALTER TABLE affinetes_instances ADD COLUMN IF NOT EXISTS principal TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS affinetes_instances_principal ON affinetes_instances (principal);
CREATE INDEX IF NOT EXISTS affinetes_instances_container_name ON affinetes_instances (container_name);
`;

/** Any constant: admissions of every service replica serialize on this advisory lock. */
const ADMISSION_LOCK = 0x61666e74; // "afnt"

/**
 * The store for several service replicas: PostgreSQL. Admission takes a transaction-wide
 * advisory lock, so checking the limits and recording the instance is atomic across
 * every replica sharing the database.
 */
export class PostgresInstanceStore implements InstanceStore {
  private constructor(private readonly pool: pg.Pool) {}

  /** Connects (`postgres://user:pass@host:port/db`) and creates the table when missing. */
  static async connect(url: string): Promise<PostgresInstanceStore> {
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    try {
      await pool.query(SCHEMA);
    } catch (err) {
      await pool.end();
      throw err;
    }
    return new PostgresInstanceStore(pool);
  }

  async admit(record: InstanceRecord, limits: ResourceLimits): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query("SELECT pg_advisory_xact_lock($1)", [ADMISSION_LOCK]);
      const exists = await client.query("SELECT 1 FROM affinetes_instances WHERE run_id = $1", [
        record.runId,
      ]);
      if (exists.rowCount) throw new ConflictError("instance", record.runId);
      const held = await this.allocatedWith(client, Object.keys(limits));
      checkAdmission(record, limits, held);
      await client.query(
        `INSERT INTO affinetes_instances (run_id, owner, principal, container_name, container_type, image, resources,
           runtime_id, state, created_at, last_used_at, num_cmd, config)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
        [
          record.runId,
          record.owner,
          record.principal,
          record.containerName ?? null,
          record.containerType,
          record.image,
          JSON.stringify(record.resources),
          record.runtimeId ?? null,
          record.state,
          record.createdAt,
          record.lastUsedAt,
          record.numCmd,
          JSON.stringify(record.config),
        ],
      );
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async get(runId: string): Promise<InstanceRecord | undefined> {
    const { rows } = await this.pool.query<Row>("SELECT * FROM affinetes_instances WHERE run_id = $1", [
      runId,
    ]);
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  async update(
    runId: string,
    patch: Partial<Pick<InstanceRecord, "runtimeId" | "state" | "lastUsedAt">>,
  ): Promise<boolean> {
    const result = await this.pool.query(
      `UPDATE affinetes_instances SET
         runtime_id = CASE WHEN $2 THEN $3 ELSE runtime_id END,
         state = COALESCE($4, state),
         last_used_at = COALESCE($5, last_used_at)
       WHERE run_id = $1`,
      [runId, "runtimeId" in patch, patch.runtimeId ?? null, patch.state ?? null, patch.lastUsedAt ?? null],
    );
    return (result.rowCount ?? 0) > 0;
  }

  async touch(runId: string, at: number): Promise<void> {
    await this.pool.query(
      "UPDATE affinetes_instances SET num_cmd = num_cmd + 1, last_used_at = $2 WHERE run_id = $1",
      [runId, at],
    );
  }

  async release(runId: string): Promise<boolean> {
    const result = await this.pool.query("DELETE FROM affinetes_instances WHERE run_id = $1", [runId]);
    return (result.rowCount ?? 0) > 0;
  }

  async list(filter: InstanceFilter = {}): Promise<InstanceRecord[]> {
    const { rows } = await this.pool.query<Row>(
      `SELECT * FROM affinetes_instances
       WHERE ($1::text IS NULL OR run_id = $1) AND ($2::text IS NULL OR container_name = $2)
         AND ($3::text IS NULL OR owner = $3) AND ($4::text IS NULL OR principal = $4)
       ORDER BY created_at, run_id`,
      [filter.runId ?? null, filter.containerName ?? null, filter.owner ?? null, filter.principal ?? null],
    );
    return rows.map(fromRow);
  }

  async allocated(keys: readonly string[]): Promise<Record<string, number>> {
    return this.allocatedWith(this.pool, keys);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  private async allocatedWith(
    db: pg.Pool | pg.PoolClient,
    keys: readonly string[],
  ): Promise<Record<string, number>> {
    const result: Record<string, number> = {};
    for (const key of keys) {
      const { rows } =
        key === INSTANCES_KEY
          ? await db.query<{ total: string }>("SELECT COUNT(*) AS total FROM affinetes_instances")
          : await db.query<{ total: string }>(
              "SELECT COALESCE(SUM((resources ->> $1)::double precision), 0) AS total FROM affinetes_instances",
              [key],
            );
      result[key] = Number(rows[0]?.total ?? 0);
    }
    return result;
  }
}

function fromRow(row: Row): InstanceRecord {
  return {
    runId: row.run_id,
    owner: row.owner,
    principal: row.principal,
    containerName: row.container_name ?? undefined,
    containerType: row.container_type,
    image: row.image,
    resources: row.resources,
    runtimeId: row.runtime_id ?? undefined,
    state: row.state,
    createdAt: Number(row.created_at),
    lastUsedAt: Number(row.last_used_at),
    numCmd: row.num_cmd,
    config: row.config,
  };
}
