import { SchemaTooNewError } from "../errors.js";
import type { Database, Transaction } from "./database.js";

/** One schema change of a table set, on either engine (`tx.dialect` says which). */
export interface Migration {
  /** What it changes and why, for whoever reads the list. */
  description: string;
  up(tx: Transaction): Promise<void>;
}

/**
 * The tables of one face (`rollout`, `control`, `queue`) and their migrations, oldest
 * first: the schema version is the number of migrations applied. Append only: a
 * released migration never changes, a new one follows it.
 */
export interface TableSet {
  name: string;
  migrations: readonly Migration[];
}

/** Any constant: replicas starting together migrate one at a time. */
const MIGRATION_LOCK = 0x6166736d; // "afsm"

/** Where each table set's version is recorded, in the database it describes. */
const VERSIONS = `CREATE TABLE IF NOT EXISTS affinetes_schema (
  table_set TEXT PRIMARY KEY, version INTEGER NOT NULL, migrated_at BIGINT NOT NULL)`;

/**
 * Brings `set`'s tables to the version this code knows, in one transaction (all or
 * nothing, one process at a time), and records it. A database without a recorded
 * version is at version 0: the first migration adopts whatever layout an earlier
 * release made. Throws `SchemaTooNewError`, changing nothing, when the database is at a
 * version newer than this code knows. Returns the version found.
 */
export async function migrate(db: Database, set: TableSet): Promise<number> {
  return db.transaction(async (tx) => {
    await tx.exclusive(MIGRATION_LOCK);
    await tx.exec(VERSIONS);
    const [row] = await tx.query<{ version: number }>(
      "SELECT version FROM affinetes_schema WHERE table_set = $1",
      [set.name],
    );
    const found = row?.version ?? 0;
    const known = set.migrations.length;
    if (found > known) throw new SchemaTooNewError(set.name, found, known);
    if (found === known) return found;
    for (const migration of set.migrations.slice(found)) await migration.up(tx);
    await tx.run(
      `INSERT INTO affinetes_schema (table_set, version, migrated_at) VALUES ($1, $2, $3)
       ON CONFLICT (table_set) DO UPDATE SET version = excluded.version, migrated_at = excluded.migrated_at`,
      [set.name, known, Date.now()],
    );
    return found;
  });
}
