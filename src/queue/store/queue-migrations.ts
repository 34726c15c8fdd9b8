import type { Transaction } from "../../store/database.js";
import type { Dialect } from "../../store/dialect.js";
import type { TableSet } from "../../store/migrate.js";
import { sqliteColumns } from "../../store/sqlite-schema.js";

/**
 * The process queue's tables, declared once for both engines. Documents are kept whole
 * as the protocol's JSON, with the fields the queue selects on as columns; on PostgreSQL
 * they are `json`, not `jsonb`, which refuses "\u0000" (a log line or an argument may
 * hold one) and reorders keys. Times are doubles: prioritytime is a ns timestamp held in
 * a JS number (~1.7e18, past 2^53, negative for high priorities), which a double keeps.
 */
const tables = ({ types: t }: Dialect) => `
  CREATE TABLE IF NOT EXISTS affinetes_q_colonies (name TEXT PRIMARY KEY, colonyid TEXT NOT NULL, doc ${t.doc} NOT NULL);
  CREATE TABLE IF NOT EXISTS affinetes_q_executors (
    executorid TEXT PRIMARY KEY, colonyname TEXT NOT NULL, executorname TEXT NOT NULL, doc ${t.doc} NOT NULL,
    UNIQUE (colonyname, executorname));
  CREATE TABLE IF NOT EXISTS affinetes_q_processes (
    seq ${t.serialKey}, processid TEXT NOT NULL UNIQUE, colonyname TEXT NOT NULL, state ${t.smallint} NOT NULL,
    executortype TEXT NOT NULL, executornames ${t.json} NOT NULL, label TEXT NOT NULL, isassigned ${t.bool} NOT NULL,
    waitforparents ${t.bool} NOT NULL, prioritytime ${t.double} NOT NULL, starttime ${t.double}, endtime ${t.double},
    waitdeadline ${t.double}, execdeadline ${t.double}, graphid TEXT NOT NULL, doc ${t.doc} NOT NULL);
  CREATE INDEX IF NOT EXISTS affinetes_q_processes_queue
    ON affinetes_q_processes (colonyname, state, executortype, prioritytime);
  CREATE INDEX IF NOT EXISTS affinetes_q_processes_exec_deadline
    ON affinetes_q_processes (execdeadline) WHERE state = 1 AND execdeadline IS NOT NULL;
  CREATE INDEX IF NOT EXISTS affinetes_q_processes_wait_deadline
    ON affinetes_q_processes (waitdeadline) WHERE state = 0 AND waitdeadline IS NOT NULL;
  CREATE TABLE IF NOT EXISTS affinetes_q_graphs (
    seq ${t.serial}, processgraphid TEXT NOT NULL ${t.key}, colonyname TEXT NOT NULL, state ${t.smallint} NOT NULL,
    submitted ${t.double} NOT NULL, doc ${t.doc} NOT NULL);
  CREATE INDEX IF NOT EXISTS affinetes_q_graphs_list ON affinetes_q_graphs (colonyname, state, submitted);
  CREATE TABLE IF NOT EXISTS affinetes_q_logs (
    seq ${t.serialKey}, processid TEXT NOT NULL, ts ${t.double} NOT NULL, doc ${t.doc} NOT NULL);
  CREATE INDEX IF NOT EXISTS affinetes_q_logs_process ON affinetes_q_logs (processid, ts);
  CREATE TABLE IF NOT EXISTS affinetes_q_objects (
    seq ${t.serial}, kind TEXT NOT NULL, id TEXT NOT NULL, colonyname TEXT NOT NULL, doc ${t.doc} NOT NULL,
    ${t.key} (kind, id));
  CREATE TABLE IF NOT EXISTS affinetes_q_channels (
    seq ${t.serialKey}, processid TEXT NOT NULL, colonyname TEXT NOT NULL, name TEXT NOT NULL,
    senderid TEXT NOT NULL, sequence ${t.bigint} NOT NULL, doc ${t.doc} NOT NULL,
    UNIQUE (processid, name, senderid, sequence));
  CREATE INDEX IF NOT EXISTS affinetes_q_channels_read ON affinetes_q_channels (processid, name, seq);`;

/** SQLite's `q_...` tables of an earlier release that keep their rows under the new name as they are. */
const RENAMED = ["colonies", "executors", "processes", "objects", "channels", "logs"];

/** The process queue's tables and their migrations. */
export const QUEUE_TABLES: TableSet = {
  name: "queue",
  migrations: [
    {
      description:
        "one layout on both engines; a database of an earlier release is adopted: SQLite's `q_...` tables " +
        "take PostgreSQL's names, its logs' `timestamp` becomes `ts`, its graphs gain a seq (in their " +
        "order) and it gains the deadline and graph-listing indexes it lacked",
      up: async (tx) => {
        const earlierSqlite = tx.dialect.name === "sqlite" && (await sqliteColumns(tx, "q_graphs")).size > 0;
        if (earlierSqlite) await renameSqlite(tx);
        // replicas of the release before versions create these tables under this lock
        if (tx.dialect.name === "postgres") await tx.exclusive(0x61667175);
        await tx.exec(tables(tx.dialect));
        if (earlierSqlite)
          await tx.exec(`
            INSERT INTO affinetes_q_graphs (seq, processgraphid, colonyname, state, submitted, doc)
              SELECT rowid, processgraphid, colonyname, state, submitted, doc FROM q_graphs ORDER BY rowid;
            DROP TABLE q_graphs;`);
      },
    },
  ],
};

async function renameSqlite(tx: Transaction): Promise<void> {
  await tx.exec(`
    ${RENAMED.map((t) => `ALTER TABLE q_${t} RENAME TO affinetes_q_${t};`).join("\n")}
    ALTER TABLE affinetes_q_logs RENAME COLUMN timestamp TO ts;
    DROP INDEX q_processes_queue;
    DROP INDEX q_logs_process;
    DROP INDEX q_channels_read;`);
}
