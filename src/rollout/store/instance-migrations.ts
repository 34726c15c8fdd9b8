import type { TableSet } from "../../store/migrate.js";
import { sqliteColumns } from "../../store/sqlite-schema.js";

/** The rollout service's tables; their layout at each version is what these steps leave. */
export const INSTANCE_TABLES: TableSet = {
  name: "rollout",
  migrations: [
    {
      description:
        "the layout before versions were recorded, adopted as it is (a file of an earlier release gains owner and principal)",
      sqlite: async (tx) => {
        await tx.exec(`
          CREATE TABLE IF NOT EXISTS instances (
            run_id TEXT PRIMARY KEY, owner TEXT NOT NULL DEFAULT '', principal TEXT NOT NULL DEFAULT '',
            container_name TEXT, container_type TEXT NOT NULL, image TEXT NOT NULL, resources TEXT NOT NULL,
            runtime_id TEXT, state TEXT NOT NULL, created_at INTEGER NOT NULL, last_used_at INTEGER NOT NULL,
            num_cmd INTEGER NOT NULL DEFAULT 0, config TEXT NOT NULL);
          CREATE INDEX IF NOT EXISTS instances_container_name ON instances (container_name);`);
        // rows written before a column existed belong to no service, and to no principal but the admin
        for (const column of ["owner", "principal"]) {
          if (!(await sqliteColumns(tx, "instances")).has(column))
            await tx.exec(`ALTER TABLE instances ADD COLUMN ${column} TEXT NOT NULL DEFAULT ''`);
        }
        await tx.exec("CREATE INDEX IF NOT EXISTS instances_principal ON instances (principal)");
      },
      postgres: `
        CREATE TABLE IF NOT EXISTS affinetes_instances (
          run_id TEXT PRIMARY KEY, owner TEXT NOT NULL DEFAULT '', principal TEXT NOT NULL DEFAULT '',
          container_name TEXT, container_type TEXT NOT NULL, image TEXT NOT NULL, resources JSONB NOT NULL,
          runtime_id TEXT, state TEXT NOT NULL, created_at BIGINT NOT NULL, last_used_at BIGINT NOT NULL,
          num_cmd INTEGER NOT NULL DEFAULT 0, config JSONB NOT NULL);
        ALTER TABLE affinetes_instances ADD COLUMN IF NOT EXISTS owner TEXT NOT NULL DEFAULT '';
        ALTER TABLE affinetes_instances ADD COLUMN IF NOT EXISTS principal TEXT NOT NULL DEFAULT '';
        CREATE INDEX IF NOT EXISTS affinetes_instances_principal ON affinetes_instances (principal);
        CREATE INDEX IF NOT EXISTS affinetes_instances_container_name ON affinetes_instances (container_name);`,
    },
    {
      description: "one layout on both engines: SQLite's table and indexes take PostgreSQL's names",
      sqlite: `
        ALTER TABLE instances RENAME TO affinetes_instances;
        DROP INDEX instances_container_name;
        DROP INDEX instances_principal;
        CREATE INDEX affinetes_instances_principal ON affinetes_instances (principal);
        CREATE INDEX affinetes_instances_container_name ON affinetes_instances (container_name);`,
    },
  ],
};
