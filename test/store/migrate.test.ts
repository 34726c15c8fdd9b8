import { describe, expect, it } from "vitest";
import { SchemaTooNewError } from "../../src/errors.js";
import { CONTROL_TABLES } from "../../src/control/store/control-migrations.js";
import { SqlControlStore } from "../../src/control/store/sql-control-store.js";
import { QUEUE_TABLES } from "../../src/queue/store/queue-migrations.js";
import { SqlQueueStore } from "../../src/queue/store/sql-queue-store.js";
import { INSTANCE_TABLES } from "../../src/rollout/store/instance-migrations.js";
import { SqlInstanceStore } from "../../src/rollout/store/sql-instance-store.js";
import type { Database } from "../../src/store/database.js";
import type { TableSet } from "../../src/store/migrate.js";
import { migrate } from "../../src/store/migrate.js";
import { openDatabase } from "../../src/store/open-database.js";
import { afs } from "../helpers/afs.js";
import { storeTargets } from "./store-targets.js";

const LATEST = {
  rollout: INSTANCE_TABLES.migrations.length,
  control: CONTROL_TABLES.migrations.length,
  queue: QUEUE_TABLES.migrations.length,
};

/** A table set of the test's own, with two versions. */
const NOTES: TableSet = {
  name: "notes",
  migrations: [
    {
      description: "notes",
      up: (tx) => tx.exec("CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL)"),
    },
    {
      description: "notes get an author",
      up: (tx) => tx.exec("ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT 'nobody'"),
    },
  ],
};

async function versions(db: Database): Promise<Record<string, number>> {
  const rows = await db.query<{ table_set: string; version: number }>(
    "SELECT table_set, version FROM affinetes_schema ORDER BY table_set",
  );
  return Object.fromEntries(rows.map((r) => [r.table_set, r.version]));
}

/** Opens the three faces' stores on `db`, as the service does. */
async function openAll(db: Database): Promise<void> {
  await SqlInstanceStore.open(db);
  await SqlControlStore.open(db);
  await SqlQueueStore.open(db).then((queue) => queue.close());
}

describe.each(storeTargets)("schema versions on $name", (target) => {
  it("a fresh database gets every table set at the latest version, recorded, once", async () => {
    const { location, drop } = await target.fresh();
    const db = await openDatabase(location);
    try {
      await openAll(db);
      expect(await versions(db)).toEqual(LATEST);
      await openAll(db); // a restart finds nothing to do
      expect(await versions(db)).toEqual(LATEST);
    } finally {
      await db.close();
      await drop();
    }
  });

  it("replicas starting together on an empty database migrate it once between them", async () => {
    const { location, drop } = await target.fresh();
    const replicas = await Promise.all([1, 2, 3, 4].map(() => openDatabase(location)));
    try {
      await Promise.all(replicas.map(openAll));
      for (const db of replicas) expect(await versions(db)).toEqual(LATEST);
    } finally {
      await Promise.all(replicas.map((db) => db.close()));
      await drop();
    }
  });

  it("an older version is migrated, its rows kept; a migration that fails changes nothing", async () => {
    const { location, drop } = await target.fresh();
    const db = await openDatabase(location);
    try {
      await migrate(db, { ...NOTES, migrations: NOTES.migrations.slice(0, 1) });
      await db.run("INSERT INTO notes (id, body) VALUES ('n1', 'kept')");
      expect(await versions(db)).toEqual({ notes: 1 });
      const failing: TableSet = {
        name: "notes",
        migrations: [
          ...NOTES.migrations,
          { description: "breaks", up: (tx) => tx.exec("DROP TABLE nowhere") },
        ],
      };
      await expect(migrate(db, failing)).rejects.toThrow();
      expect(await versions(db)).toEqual({ notes: 1 }); // the second step, which ran, rolled back with it
      expect(await db.query("SELECT * FROM notes")).toEqual([{ id: "n1", body: "kept" }]);
      expect(await migrate(db, NOTES)).toBe(1);
      expect(await versions(db)).toEqual({ notes: 2 });
      expect(await db.query("SELECT * FROM notes")).toEqual([{ id: "n1", body: "kept", author: "nobody" }]);
    } finally {
      await db.close();
      await drop();
    }
  });

  it("a newer schema than this release knows refuses to start, naming the table set and versions, and changes nothing", async () => {
    const { location, drop } = await target.fresh();
    const db = await openDatabase(location);
    try {
      await openAll(db);
      await db.run("UPDATE affinetes_schema SET version = 99 WHERE table_set = 'queue'");
      const refused = await SqlQueueStore.open(db).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(SchemaTooNewError);
      expect(refused).toMatchObject({
        code: "SCHEMA_TOO_NEW",
        tableSet: "queue",
        found: 99,
        known: LATEST.queue,
      });
      expect((refused as Error).message).toMatch(
        /queue tables are at schema version 99, newer than .* knows \(1\)/,
      );
      expect(await versions(db)).toEqual({ ...LATEST, queue: 99 });
      await SqlInstanceStore.open(db); // the other table sets are unaffected
    } finally {
      await db.close();
      await drop();
    }
  });

  it("afs serve on a database a newer release migrated exits non-zero, saying which tables and versions", async () => {
    const { location, drop } = await target.fresh();
    const db = await openDatabase(location);
    try {
      await openAll(db);
      await db.run("UPDATE affinetes_schema SET version = 7 WHERE table_set = 'rollout'");
      const result = await afs(["serve", "--port", "0", "--db", location], { timeoutMs: 60_000 });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/rollout tables are at schema version 7, newer than .* knows \(1\)/);
      expect(result.stdout).not.toMatch(/listening/);
    } finally {
      await db.close();
      await drop();
    }
  }, 90_000);
});
