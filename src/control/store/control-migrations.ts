import { InfrastructureError } from "../../errors.js";
import type { Transaction } from "../../store/database.js";
import type { TableSet } from "../../store/migrate.js";
import { sqliteColumns, sqliteHasUniqueIndexOn } from "../../store/sqlite-schema.js";

const DISK_COLUMNS = "id, name, backend, location, owner, users, created_at";
const CONTAINER_COLUMNS =
  "id, owner, disk_id, disk_path, volumes, image, command, init_script, env, metadata, vcpu_count, " +
  "mem_size_mib, ports, network, status, exit_code, error, runtime_id, created_at, finished_at";

/** The control plane's tables (disks, containers); their layout at each version is what these steps leave. */
export const CONTROL_TABLES: TableSet = {
  name: "control",
  migrations: [
    {
      description:
        "the layout before versions were recorded, adopted as it is (earlier releases: disk names unique " +
        "globally, now per owner; containers without a network, now 'full', the engine's default they had)",
      sqlite: adoptSqlite,
      postgres: `
        -- replicas of the release before this one create these tables under this lock
        SELECT pg_advisory_xact_lock(${0x61666373});
        CREATE TABLE IF NOT EXISTS affinetes_disks (
          seq BIGSERIAL, id TEXT PRIMARY KEY, name TEXT NOT NULL, backend TEXT NOT NULL, location TEXT NOT NULL,
          owner TEXT NOT NULL, users JSONB NOT NULL, created_at BIGINT NOT NULL);
        CREATE INDEX IF NOT EXISTS affinetes_disks_owner ON affinetes_disks (owner);
        CREATE TABLE IF NOT EXISTS affinetes_containers (
          seq BIGSERIAL, id TEXT PRIMARY KEY, owner TEXT NOT NULL, disk_id TEXT, disk_path TEXT NOT NULL,
          volumes JSONB NOT NULL, image TEXT NOT NULL, command TEXT, init_script TEXT, env JSONB NOT NULL,
          metadata JSONB NOT NULL, vcpu_count DOUBLE PRECISION, mem_size_mib DOUBLE PRECISION, ports JSONB NOT NULL,
          network JSONB NOT NULL DEFAULT '"full"', status TEXT NOT NULL, exit_code INTEGER, error TEXT,
          runtime_id TEXT, created_at BIGINT NOT NULL, finished_at BIGINT);
        CREATE INDEX IF NOT EXISTS affinetes_containers_owner ON affinetes_containers (owner);
        CREATE INDEX IF NOT EXISTS affinetes_containers_disk_id ON affinetes_containers (disk_id);
        CREATE INDEX IF NOT EXISTS affinetes_containers_status ON affinetes_containers (status);
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
        END $$;`,
    },
    {
      description:
        "one layout on both engines: SQLite's tables take PostgreSQL's names and a seq (creation order " +
        "among records of one millisecond; it was the rowid, which VACUUM may renumber)",
      sqlite: `
        CREATE TABLE affinetes_disks (
          seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, backend TEXT NOT NULL,
          location TEXT NOT NULL, owner TEXT NOT NULL, users TEXT NOT NULL, created_at INTEGER NOT NULL,
          UNIQUE (owner, name));
        INSERT INTO affinetes_disks (seq, ${DISK_COLUMNS}) SELECT rowid, ${DISK_COLUMNS} FROM disks ORDER BY rowid;
        DROP TABLE disks;
        CREATE INDEX affinetes_disks_owner ON affinetes_disks (owner);
        CREATE TABLE affinetes_containers (
          seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, owner TEXT NOT NULL, disk_id TEXT,
          disk_path TEXT NOT NULL, volumes TEXT NOT NULL, image TEXT NOT NULL, command TEXT, init_script TEXT,
          env TEXT NOT NULL, metadata TEXT NOT NULL, vcpu_count REAL, mem_size_mib REAL, ports TEXT NOT NULL,
          network TEXT NOT NULL DEFAULT '"full"', status TEXT NOT NULL, exit_code INTEGER, error TEXT,
          runtime_id TEXT, created_at INTEGER NOT NULL, finished_at INTEGER);
        INSERT INTO affinetes_containers (seq, ${CONTAINER_COLUMNS})
          SELECT rowid, ${CONTAINER_COLUMNS} FROM containers ORDER BY rowid;
        DROP TABLE containers;
        CREATE INDEX affinetes_containers_owner ON affinetes_containers (owner);
        CREATE INDEX affinetes_containers_disk_id ON affinetes_containers (disk_id);
        CREATE INDEX affinetes_containers_status ON affinetes_containers (status);`,
    },
  ],
};

/**
 * SQLite's layout before versions: `disks` and `containers`, created, or taken as an
 * earlier release left them. A file whose tables of these names are someone else's is
 * refused rather than misread.
 */
async function adoptSqlite(tx: Transaction): Promise<void> {
  await tx.exec(`
    CREATE TABLE IF NOT EXISTS disks (
      id TEXT PRIMARY KEY, name TEXT NOT NULL, backend TEXT NOT NULL, location TEXT NOT NULL, owner TEXT NOT NULL,
      users TEXT NOT NULL, created_at INTEGER NOT NULL, UNIQUE (owner, name));
    CREATE TABLE IF NOT EXISTS containers (
      id TEXT PRIMARY KEY, owner TEXT NOT NULL, disk_id TEXT, disk_path TEXT NOT NULL, volumes TEXT NOT NULL,
      image TEXT NOT NULL, command TEXT, init_script TEXT, env TEXT NOT NULL, metadata TEXT NOT NULL,
      vcpu_count REAL, mem_size_mib REAL, ports TEXT NOT NULL, network TEXT NOT NULL DEFAULT '"full"',
      status TEXT NOT NULL, exit_code INTEGER, error TEXT, runtime_id TEXT, created_at INTEGER NOT NULL,
      finished_at INTEGER);`);
  for (const [table, expected] of [
    ["disks", DISK_COLUMNS],
    ["containers", CONTAINER_COLUMNS.replace("network, ", "")],
  ] as const) {
    const columns = await sqliteColumns(tx, table);
    const missing = expected.split(", ").filter((c) => !columns.has(c));
    if (missing.length)
      throw new InfrastructureError(
        `the SQLite file has a "${table}" table that is not the control plane's (missing ${missing.join(", ")})`,
      );
  }
  if (!(await sqliteColumns(tx, "containers")).has("network"))
    await tx.exec(`ALTER TABLE containers ADD COLUMN network TEXT NOT NULL DEFAULT '"full"'`);
  // SQLite cannot drop a UNIQUE constraint in place: the table is rebuilt, in its order
  if (await sqliteHasUniqueIndexOn(tx, "disks", ["name"])) {
    await tx.exec(`
      CREATE TABLE disks_next (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, backend TEXT NOT NULL, location TEXT NOT NULL, owner TEXT NOT NULL,
        users TEXT NOT NULL, created_at INTEGER NOT NULL, UNIQUE (owner, name));
      INSERT INTO disks_next (${DISK_COLUMNS}) SELECT ${DISK_COLUMNS} FROM disks ORDER BY rowid;
      DROP TABLE disks;
      ALTER TABLE disks_next RENAME TO disks;`);
  }
}
