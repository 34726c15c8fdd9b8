import { InfrastructureError } from "../../errors.js";
import type { Transaction } from "../../store/database.js";
import type { Dialect } from "../../store/dialect.js";
import type { TableSet } from "../../store/migrate.js";
import { sqliteColumns } from "../../store/sqlite-schema.js";

const DISK_COLUMNS = "id, name, backend, location, owner, users, created_at";
const CONTAINER_COLUMNS =
  "id, owner, disk_id, disk_path, volumes, image, command, init_script, env, metadata, vcpu_count, " +
  "mem_size_mib, ports, status, exit_code, error, runtime_id, created_at, finished_at";

/**
 * The control plane's tables, declared once for both engines. `seq` orders records
 * created in the same millisecond; a disk's name is unique per owner.
 */
const tables = ({ types: t }: Dialect) => `
  CREATE TABLE IF NOT EXISTS affinetes_disks (
    seq ${t.serial}, id TEXT NOT NULL ${t.key}, name TEXT NOT NULL, backend TEXT NOT NULL, location TEXT NOT NULL,
    owner TEXT NOT NULL, users ${t.json} NOT NULL, created_at ${t.bigint} NOT NULL,
    CONSTRAINT affinetes_disks_owner_name_unique UNIQUE (owner, name));
  CREATE INDEX IF NOT EXISTS affinetes_disks_owner ON affinetes_disks (owner);
  CREATE TABLE IF NOT EXISTS affinetes_containers (
    seq ${t.serial}, id TEXT NOT NULL ${t.key}, owner TEXT NOT NULL, disk_id TEXT, disk_path TEXT NOT NULL,
    volumes ${t.json} NOT NULL, image TEXT NOT NULL, command TEXT, init_script TEXT, env ${t.json} NOT NULL,
    metadata ${t.json} NOT NULL, vcpu_count ${t.double}, mem_size_mib ${t.double}, ports ${t.json} NOT NULL,
    network ${t.json} NOT NULL DEFAULT '"full"', status TEXT NOT NULL, exit_code INTEGER, error TEXT,
    runtime_id TEXT, created_at ${t.bigint} NOT NULL, finished_at ${t.bigint});
  CREATE INDEX IF NOT EXISTS affinetes_containers_owner ON affinetes_containers (owner);
  CREATE INDEX IF NOT EXISTS affinetes_containers_disk_id ON affinetes_containers (disk_id);
  CREATE INDEX IF NOT EXISTS affinetes_containers_status ON affinetes_containers (status);`;

/**
 * PostgreSQL's earlier layouts: disk names unique globally (now per owner), containers
 * without a network (they had the engine's default, `"full"`).
 */
const UPGRADE_POSTGRES = `
  DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'affinetes_disks_name_unique'
               AND conrelid = 'affinetes_disks'::regclass) THEN
      ALTER TABLE affinetes_disks DROP CONSTRAINT affinetes_disks_name_unique;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'affinetes_disks_owner_name_unique'
                   AND conrelid = 'affinetes_disks'::regclass) THEN
      ALTER TABLE affinetes_disks ADD CONSTRAINT affinetes_disks_owner_name_unique UNIQUE (owner, name);
    END IF;
  END $$;
  ALTER TABLE affinetes_containers ADD COLUMN IF NOT EXISTS network JSONB NOT NULL DEFAULT '"full"';`;

/** The control plane's tables and their migrations. */
export const CONTROL_TABLES: TableSet = {
  name: "control",
  migrations: [
    {
      description:
        "one layout on both engines; a database of an earlier release is adopted: SQLite's `disks` and " +
        "`containers` take PostgreSQL's names and a seq (in their order), disk names unique per owner, " +
        "containers without a network get 'full'",
      up: async (tx) => {
        const sqliteTables = tx.dialect.name === "sqlite" ? await earlierSqliteTables(tx) : undefined;
        // replicas of the release before versions create these tables under this lock
        if (tx.dialect.name === "postgres") await tx.exclusive(0x61666373);
        await tx.exec(tables(tx.dialect));
        if (tx.dialect.name === "postgres") await tx.exec(UPGRADE_POSTGRES);
        if (sqliteTables) await copySqlite(tx, sqliteTables.hasNetwork);
      },
    },
  ],
};

/**
 * The `disks` and `containers` of an earlier SQLite layout, if there are: refused when
 * they are someone else's tables rather than misread.
 */
async function earlierSqliteTables(tx: Transaction): Promise<{ hasNetwork: boolean } | undefined> {
  const found = {
    disks: await sqliteColumns(tx, "disks"),
    containers: await sqliteColumns(tx, "containers"),
  };
  if (!found.disks.size && !found.containers.size) return undefined;
  for (const [table, expected] of [
    ["disks", DISK_COLUMNS],
    ["containers", CONTAINER_COLUMNS],
  ] as const) {
    const missing = expected.split(", ").filter((c) => !found[table].has(c));
    if (missing.length)
      throw new InfrastructureError(
        `the SQLite file has a "${table}" table that is not the control plane's (missing ${missing.join(", ")})`,
      );
  }
  return { hasNetwork: found.containers.has("network") };
}

async function copySqlite(tx: Transaction, hasNetwork: boolean): Promise<void> {
  const network = hasNetwork ? "network" : `'"full"'`;
  await tx.exec(`
    INSERT INTO affinetes_disks (seq, ${DISK_COLUMNS}) SELECT rowid, ${DISK_COLUMNS} FROM disks ORDER BY rowid;
    INSERT INTO affinetes_containers (seq, ${CONTAINER_COLUMNS}, network)
      SELECT rowid, ${CONTAINER_COLUMNS}, ${network} FROM containers ORDER BY rowid;
    DROP TABLE disks;
    DROP TABLE containers;`);
}
