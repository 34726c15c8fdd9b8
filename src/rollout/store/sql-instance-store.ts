import { ConflictError } from "../../errors.js";
import type { Database, Queryable } from "../../store/database.js";
import { migrate } from "../../store/migrate.js";
import { openOwning } from "../../store/open-database.js";
import { SqlStore } from "../../store/sql-store.js";
import type { InstanceFilter, InstanceRecord, InstanceStore, ResourceLimits } from "../instance-store.js";
import { INSTANCES_KEY, checkAdmission } from "../instance-store.js";
import { INSTANCE_TABLES } from "./instance-migrations.js";

interface Row {
  run_id: string;
  owner: string;
  principal: string;
  container_name: string | null;
  container_type: string;
  image: string;
  resources: string;
  runtime_id: string | null;
  state: InstanceRecord["state"];
  created_at: number;
  last_used_at: number;
  num_cmd: number;
  config: string;
}

/** Any constant: admissions of every process sharing the database serialize on it. */
const ADMISSION_LOCK = 0x61666e74; // "afnt"

const INSERT = `INSERT INTO affinetes_instances (run_id, owner, principal, container_name, container_type, image,
  resources, runtime_id, state, created_at, last_used_at, num_cmd, config)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`;

/**
 * The rollout service's instances, in SQLite or PostgreSQL. Admission checks the limits
 * and records the instance in one transaction that excludes every other admission, also
 * from other service processes sharing the database.
 */
export class SqlInstanceStore extends SqlStore implements InstanceStore {
  /** The store on the service's database, its tables migrated first; closing it leaves the database open. */
  static async open(db: Database, options: { ownsDatabase?: boolean } = {}): Promise<SqlInstanceStore> {
    await migrate(db, INSTANCE_TABLES);
    return new SqlInstanceStore(db, options.ownsDatabase ?? false);
  }

  async admit(record: InstanceRecord, limits: ResourceLimits): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.exclusive(ADMISSION_LOCK);
      const taken = await tx.query("SELECT 1 AS taken FROM affinetes_instances WHERE run_id = $1", [
        record.runId,
      ]);
      if (taken.length) throw new ConflictError("instance", record.runId);
      checkAdmission(record, limits, await allocated(tx, Object.keys(limits)));
      await tx.run(INSERT, [
        record.runId,
        record.owner,
        record.principal,
        record.containerName,
        record.containerType,
        record.image,
        JSON.stringify(record.resources),
        record.runtimeId,
        record.state,
        record.createdAt,
        record.lastUsedAt,
        record.numCmd,
        JSON.stringify(record.config),
      ]);
    });
  }

  async get(runId: string): Promise<InstanceRecord | undefined> {
    const [row] = await this.db.query<Row>("SELECT * FROM affinetes_instances WHERE run_id = $1", [runId]);
    return row ? fromRow(row) : undefined;
  }

  async update(
    runId: string,
    patch: Partial<Pick<InstanceRecord, "runtimeId" | "state" | "lastUsedAt">>,
  ): Promise<boolean> {
    const changed = await this.db.run(
      `UPDATE affinetes_instances SET
         runtime_id = CASE WHEN $2 THEN $3 ELSE runtime_id END,
         state = COALESCE($4, state),
         last_used_at = COALESCE($5, last_used_at)
       WHERE run_id = $1`,
      [runId, "runtimeId" in patch, patch.runtimeId, patch.state, patch.lastUsedAt],
    );
    return changed > 0;
  }

  async touch(runId: string, at: number): Promise<void> {
    await this.db.run(
      "UPDATE affinetes_instances SET num_cmd = num_cmd + 1, last_used_at = $2 WHERE run_id = $1",
      [runId, at],
    );
  }

  async release(runId: string): Promise<boolean> {
    return (await this.db.run("DELETE FROM affinetes_instances WHERE run_id = $1", [runId])) > 0;
  }

  async list(filter: InstanceFilter = {}): Promise<InstanceRecord[]> {
    const rows = await this.db.query<Row>(
      `SELECT * FROM affinetes_instances
       WHERE (CAST($1 AS TEXT) IS NULL OR run_id = $1) AND (CAST($2 AS TEXT) IS NULL OR container_name = $2)
         AND (CAST($3 AS TEXT) IS NULL OR owner = $3) AND (CAST($4 AS TEXT) IS NULL OR principal = $4)
       ORDER BY created_at, run_id`,
      [filter.runId, filter.containerName, filter.owner, filter.principal],
    );
    return rows.map(fromRow);
  }

  allocated(keys: readonly string[]): Promise<Record<string, number>> {
    return allocated(this.db, keys);
  }
}

/** The rollout store on a database of its own at `location` (a SQLite file or a `postgres://` URL). */
export function openInstanceStore(location: string): Promise<InstanceStore> {
  return openOwning(location, SqlInstanceStore.open);
}

/** What the recorded instances hold of each key. */
async function allocated(db: Queryable, keys: readonly string[]): Promise<Record<string, number>> {
  const result: Record<string, number> = {};
  for (const key of keys) {
    const [row] =
      key === INSTANCES_KEY
        ? await db.query<{ total: number }>("SELECT COUNT(*) AS total FROM affinetes_instances")
        : await db.query<{ total: number }>(
            `SELECT COALESCE(SUM(CAST(${db.dialect.jsonValue("resources", "$1")} AS DOUBLE PRECISION)), 0)
               AS total FROM affinetes_instances`,
            [key],
          );
    result[key] = Number(row?.total ?? 0);
  }
  return result;
}

function fromRow(row: Row): InstanceRecord {
  return {
    runId: row.run_id,
    owner: row.owner,
    principal: row.principal,
    containerName: row.container_name ?? undefined,
    containerType: row.container_type,
    image: row.image,
    resources: JSON.parse(row.resources) as Record<string, number>,
    runtimeId: row.runtime_id ?? undefined,
    state: row.state,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    numCmd: row.num_cmd,
    config: JSON.parse(row.config) as Record<string, unknown>,
  };
}
