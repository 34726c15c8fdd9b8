import { execFile } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import type { Database } from "../../src/store/database.js";
import { openDatabase } from "../../src/store/open-database.js";
import { SQLITE_CHANGE_POLL_MS } from "../../src/store/sqlite-change-watcher.js";
import { sql } from "../helpers/postgres.js";
import { until } from "../helpers/until.js";
import { storeTargets } from "./store-targets.js";

const run = promisify(execFile);

/** A fresh database with one table, for one test. */
async function withDatabase(
  target: (typeof storeTargets)[number],
  test: (db: Database, location: string) => Promise<void>,
): Promise<void> {
  const { location, drop } = await target.fresh();
  const db = await openDatabase(location);
  try {
    const json = target.name === "postgres" ? "JSONB" : "TEXT";
    await db.exec(`CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT, flag BOOLEAN, doc ${json})`);
    await test(db, location);
  } finally {
    await db.close();
    await drop();
  }
}

describe.each(storeTargets)("the $name database handle", (target) => {
  it("takes $n placeholders in any order and more than once; reads values alike on both engines", () =>
    withDatabase(target, async (db) => {
      await db.run("INSERT INTO t (id, n, flag, doc) VALUES ($2, $1, $3, $4)", [
        1_700_000_000_123,
        "a",
        true,
        JSON.stringify({ k: [1, "x"] }),
      ]);
      await db.run("INSERT INTO t (id, n, flag, doc) VALUES ($1, $2, $3, $4)", ["b", null, false, undefined]);
      const rows = await db.query<{ id: string; n: number | null; doc: string | null }>(
        "SELECT id, n, doc FROM t WHERE id = $1 OR (id = $2 AND $1 <> $2) ORDER BY id",
        ["a", "b"],
      );
      // BIGINT as a number, JSON as its text (jsonb's own spacing), NULL as null
      expect(rows.map((r) => ({ ...r, doc: typeof r.doc === "string" ? JSON.parse(r.doc) : r.doc }))).toEqual(
        [
          { id: "a", n: 1_700_000_000_123, doc: { k: [1, "x"] } },
          { id: "b", n: null, doc: null },
        ],
      );
      expect(await db.query("SELECT id FROM t WHERE flag ORDER BY id")).toEqual([{ id: "a" }]);
      expect(await db.run("UPDATE t SET n = 2 WHERE id <> $1", ["zzz"])).toBe(2);
      const [count] = await db.query<{ c: number }>("SELECT COUNT(*) AS c FROM t");
      expect(count).toEqual({ c: 2 });
    }));

  it("commits a transaction that resolves, rolls back one that throws", () =>
    withDatabase(target, async (db) => {
      await db.transaction((tx) => tx.run("INSERT INTO t (id) VALUES ('kept')"));
      const failed = await db
        .transaction(async (tx) => {
          await tx.run("INSERT INTO t (id) VALUES ('dropped')");
          throw new Error("changed my mind");
        })
        .catch((err: Error) => err.message);
      expect(failed).toBe("changed my mind");
      expect(await db.query("SELECT id FROM t")).toEqual([{ id: "kept" }]);
      const violation = await db.run("INSERT INTO t (id) VALUES ('kept')").catch((err: unknown) => err);
      expect(db.dialect.isUniqueViolation(violation)).toBe(true);
    }));

  it("a statement outside a transaction never runs inside it, even while the transaction awaits", () =>
    withDatabase(target, async (db) => {
      const outside = sleep(10).then(() => db.run("INSERT INTO t (id) VALUES ('outside')"));
      const failed = db.transaction(async (tx) => {
        await tx.run("INSERT INTO t (id) VALUES ('inside')");
        await sleep(100); // the statement outside comes meanwhile
        throw new Error("rolled back");
      });
      await expect(failed).rejects.toThrow("rolled back");
      await outside;
      expect(await db.query("SELECT id FROM t")).toEqual([{ id: "outside" }]);
    }));

  it("tells another handle what one publishes, not itself; close is idempotent", async () => {
    const { location, drop } = await target.fresh();
    const [a, b] = await Promise.all([openDatabase(location), openDatabase(location)]);
    try {
      const heardByA: Array<string | undefined> = [];
      const heardByB: Array<string | undefined> = [];
      await a.subscribe("news", (m) => heardByA.push(m));
      const unsubscribe = await b.subscribe("news", (m) => heardByB.push(m));
      a.publish("news", "from a");
      a.publish("other", "not news");
      await until(() => heardByB.length > 0, 5_000);
      expect(heardByB).toEqual(["from a"]);
      unsubscribe();
      a.publish("news", "after");
      await sleep(200);
      expect(heardByB).toEqual(["from a"]);
      expect(heardByA).toEqual([]);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await a.close();
      await drop();
    }
  });
});

describe.each(storeTargets.filter((t) => t.name === "sqlite"))(
  "SQLite shared by several processes",
  (target) => {
    it("a subscriber hears (undefined: look again) when another process commits to the file", async () => {
      const { location, drop } = await target.fresh();
      const db = await openDatabase(location);
      try {
        await db.exec("CREATE TABLE t (id TEXT)");
        const heard: Array<string | undefined> = [];
        await db.subscribe("work", (m) => heard.push(m));
        await db.run("INSERT INTO t VALUES ('mine')"); // this process's own commits are not news
        await sleep(SQLITE_CHANGE_POLL_MS * 2);
        expect(heard).toEqual([]);
        const started = performance.now();
        await run(process.execPath, [
          "-e",
          `const D = require("better-sqlite3"); const db = new D(${JSON.stringify(location)});
         db.prepare("INSERT INTO t VALUES ('theirs')").run(); db.close();`,
        ]);
        expect(await until(() => heard.length > 0, 5_000)).toBe(true);
        expect(heard[0]).toBeUndefined();
        expect(performance.now() - started).toBeLessThan(SQLITE_CHANGE_POLL_MS + 2_000);
      } finally {
        await db.close();
        await drop();
      }
    });
  },
);

describe.each(storeTargets.filter((t) => t.name === "postgres"))(
  "PostgreSQL's listening connection",
  (target) => {
    it("when the server ends it, connects again, says messages may be lost (undefined), and hears again", async () => {
      const { location, drop } = await target.fresh();
      const [a, b] = await Promise.all([openDatabase(location), openDatabase(location)]);
      try {
        const heard: Array<string | undefined> = [];
        await b.subscribe("reconnect_probe", (m) => heard.push(m));
        const ended = await sql(
          location,
          "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE query LIKE 'LISTEN %reconnect_probe%'",
        );
        expect(ended.rows).toEqual([{ ended: true }]);
        expect(await until(() => heard.includes(undefined), 10_000)).toBe(true);
        a.publish("reconnect_probe", "after");
        expect(await until(() => heard.includes("after"), 5_000)).toBe(true);
      } finally {
        await Promise.all([a.close(), b.close()]);
        await drop();
      }
    });
  },
);
