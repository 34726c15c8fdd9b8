import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
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
  resources: string;
  runtime_id: string | null;
  state: InstanceRecord["state"];
  created_at: number;
  last_used_at: number;
  num_cmd: number;
  config: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS instances (
  run_id TEXT PRIMARY KEY,
  owner TEXT NOT NULL DEFAULT '',
  principal TEXT NOT NULL DEFAULT '',
  container_name TEXT,
  container_type TEXT NOT NULL,
  image TEXT NOT NULL,
  resources TEXT NOT NULL,
  runtime_id TEXT,
  state TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_used_at INTEGER NOT NULL,
  num_cmd INTEGER NOT NULL DEFAULT 0,
  config TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_container_name ON instances (container_name);
`;

/** Created after `migrate`: files older than the column get it there first. */
const INDEXES = "CREATE INDEX IF NOT EXISTS instances_principal ON instances (principal);";

/**
 * The embedded store: one SQLite file (WAL). Admission runs in an IMMEDIATE transaction,
 * so it is atomic even when several service processes share the file.
 */
export class SqliteInstanceStore implements InstanceStore {
  private readonly db: Database.Database;

  constructor(path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("busy_timeout = 10000"); // other processes' admissions wait, they do not fail
    this.db.exec(SCHEMA);
    migrate(this.db);
    this.db.exec(INDEXES);
  }

  async admit(record: InstanceRecord, limits: ResourceLimits): Promise<void> {
    const admit = this.db.transaction(() => {
      if (this.db.prepare("SELECT 1 FROM instances WHERE run_id = ?").get(record.runId)) {
        throw new ConflictError("instance", record.runId);
      }
      const held = this.allocatedNow(Object.keys(limits));
      checkAdmission(record, limits, held);
      this.db
        .prepare(
          `INSERT INTO instances (run_id, owner, principal, container_name, container_type, image, resources,
             runtime_id, state, created_at, last_used_at, num_cmd, config)
           VALUES (@run_id, @owner, @principal, @container_name, @container_type, @image, @resources, @runtime_id, @state,
             @created_at, @last_used_at, @num_cmd, @config)`,
        )
        .run(toRow(record));
    });
    admit.immediate();
  }

  async get(runId: string): Promise<InstanceRecord | undefined> {
    const row = this.db.prepare("SELECT * FROM instances WHERE run_id = ?").get(runId) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  async update(
    runId: string,
    patch: Partial<Pick<InstanceRecord, "runtimeId" | "state" | "lastUsedAt">>,
  ): Promise<boolean> {
    const current = await this.get(runId);
    if (!current) return false;
    const next = { ...current, ...patch };
    this.db
      .prepare("UPDATE instances SET runtime_id = ?, state = ?, last_used_at = ? WHERE run_id = ?")
      .run(next.runtimeId ?? null, next.state, next.lastUsedAt, runId);
    return true;
  }

  async touch(runId: string, at: number): Promise<void> {
    this.db
      .prepare("UPDATE instances SET num_cmd = num_cmd + 1, last_used_at = ? WHERE run_id = ?")
      .run(at, runId);
  }

  async release(runId: string): Promise<boolean> {
    return this.db.prepare("DELETE FROM instances WHERE run_id = ?").run(runId).changes > 0;
  }

  async list(filter: InstanceFilter = {}): Promise<InstanceRecord[]> {
    const rows = this.db
      .prepare(
        `SELECT * FROM instances
         WHERE (@run_id IS NULL OR run_id = @run_id) AND (@container_name IS NULL OR container_name = @container_name)
           AND (@owner IS NULL OR owner = @owner) AND (@principal IS NULL OR principal = @principal)
         ORDER BY created_at, run_id`,
      )
      .all({
        run_id: filter.runId ?? null,
        container_name: filter.containerName ?? null,
        owner: filter.owner ?? null,
        principal: filter.principal ?? null,
      }) as Row[];
    return rows.map(fromRow);
  }

  async allocated(keys: readonly string[]): Promise<Record<string, number>> {
    return this.allocatedNow(keys);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  private allocatedNow(keys: readonly string[]): Record<string, number> {
    const result: Record<string, number> = {};
    for (const key of keys) {
      const row =
        key === INSTANCES_KEY
          ? (this.db.prepare("SELECT COUNT(*) AS total FROM instances").get() as { total: number })
          : (this.db
              // a quoted JSON path: the key cannot change the path's meaning
              .prepare(
                `SELECT COALESCE(SUM(json_extract(resources, '$."' || ? || '"')), 0) AS total FROM instances`,
              )
              .get(key.replace(/"/g, "")) as { total: number });
      result[key] = row.total;
    }
    return result;
  }
}

function toRow(record: InstanceRecord): Row {
  return {
    run_id: record.runId,
    owner: record.owner,
    principal: record.principal,
    container_name: record.containerName ?? null,
    container_type: record.containerType,
    image: record.image,
    resources: JSON.stringify(record.resources),
    runtime_id: record.runtimeId ?? null,
    state: record.state,
    created_at: record.createdAt,
    last_used_at: record.lastUsedAt,
    num_cmd: record.numCmd,
    config: JSON.stringify(record.config),
  };
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

/**
 * Files written before the `owner` or `principal` column existed gain it (their rows
 * belong to no service, and to no principal but the admin).
 */
function migrate(db: Database.Database): void {
  const columns = db.prepare("PRAGMA table_info(instances)").all() as { name: string }[];
  for (const column of ["owner", "principal"]) {
    if (!columns.some((c) => c.name === column)) {
      db.exec(`ALTER TABLE instances ADD COLUMN ${column} TEXT NOT NULL DEFAULT ''`);
    }
  }
}
