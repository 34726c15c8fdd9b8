import type { Transaction } from "../../store/database.js";
import type { Dialect } from "../../store/dialect.js";
import type { TableSet } from "../../store/migrate.js";
import { sqliteColumns } from "../../store/sqlite-schema.js";

/** The rollout service's table, declared once for both engines. */
const tables = ({ types: t }: Dialect) => `
  CREATE TABLE IF NOT EXISTS affinetes_instances (
    run_id TEXT PRIMARY KEY, owner TEXT NOT NULL DEFAULT '', principal TEXT NOT NULL DEFAULT '',
    container_name TEXT, container_type TEXT NOT NULL, image TEXT NOT NULL, resources ${t.json} NOT NULL,
    runtime_id TEXT, state TEXT NOT NULL, created_at ${t.bigint} NOT NULL, last_used_at ${t.bigint} NOT NULL,
    num_cmd INTEGER NOT NULL DEFAULT 0, config ${t.json} NOT NULL);
  CREATE INDEX IF NOT EXISTS affinetes_instances_principal ON affinetes_instances (principal);
  CREATE INDEX IF NOT EXISTS affinetes_instances_container_name ON affinetes_instances (container_name);`;

/** The rollout service's tables and their migrations. */
export const INSTANCE_TABLES: TableSet = {
  name: "rollout",
  migrations: [
    {
      description:
        "one layout on both engines; a database of an earlier release is adopted: SQLite's `instances` " +
        "takes PostgreSQL's name, and rows written before `owner` and `principal` existed belong to no " +
        "service and to no principal but the admin",
      up: async (tx) => {
        if (tx.dialect.name === "postgres") {
          for (const column of ["owner", "principal"])
            await tx.exec(`ALTER TABLE IF EXISTS affinetes_instances
              ADD COLUMN IF NOT EXISTS ${column} TEXT NOT NULL DEFAULT ''`);
        } else if ((await sqliteColumns(tx, "instances")).size) await adoptSqlite(tx);
        await tx.exec(tables(tx.dialect));
      },
    },
  ],
};

async function adoptSqlite(tx: Transaction): Promise<void> {
  for (const column of ["owner", "principal"]) {
    if (!(await sqliteColumns(tx, "instances")).has(column))
      await tx.exec(`ALTER TABLE instances ADD COLUMN ${column} TEXT NOT NULL DEFAULT ''`);
  }
  await tx.exec(`
    ALTER TABLE instances RENAME TO affinetes_instances;
    DROP INDEX IF EXISTS instances_container_name;
    DROP INDEX IF EXISTS instances_principal;`);
}
