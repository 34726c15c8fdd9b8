import type { TableSet } from "../../store/migrate.js";

/** The tables SQLite named `q_...` before version 2. */
const RENAMED = ["colonies", "executors", "processes", "objects", "channels", "logs"];

/**
 * The process queue's tables. Documents are kept whole as the protocol's JSON, with the
 * fields the queue selects on as columns. On PostgreSQL documents are `json`, not
 * `jsonb`: jsonb refuses "\u0000" (a log line or an argument may hold one) and reorders
 * keys, and no query looks inside a document. Times are doubles: prioritytime is a ns
 * timestamp held in a JS number (~1.7e18, past 2^53, negative for high priorities),
 * which a double keeps as it is.
 */
export const QUEUE_TABLES: TableSet = {
  name: "queue",
  migrations: [
    {
      description: "the layout before versions were recorded, adopted as it is",
      sqlite: `
        CREATE TABLE IF NOT EXISTS q_colonies (name TEXT PRIMARY KEY, colonyid TEXT NOT NULL, doc TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS q_executors (
          executorid TEXT PRIMARY KEY, colonyname TEXT NOT NULL, executorname TEXT NOT NULL, doc TEXT NOT NULL,
          UNIQUE (colonyname, executorname));
        CREATE TABLE IF NOT EXISTS q_processes (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          processid TEXT NOT NULL UNIQUE, colonyname TEXT NOT NULL, state INTEGER NOT NULL,
          executortype TEXT NOT NULL, executornames TEXT NOT NULL, label TEXT NOT NULL,
          isassigned INTEGER NOT NULL, waitforparents INTEGER NOT NULL, prioritytime REAL NOT NULL,
          starttime REAL, endtime REAL, waitdeadline REAL, execdeadline REAL, graphid TEXT NOT NULL,
          doc TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS q_processes_queue ON q_processes (colonyname, state, executortype, prioritytime);
        CREATE TABLE IF NOT EXISTS q_graphs (
          processgraphid TEXT PRIMARY KEY, colonyname TEXT NOT NULL, state INTEGER NOT NULL, submitted REAL NOT NULL,
          doc TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS q_logs (
          seq INTEGER PRIMARY KEY AUTOINCREMENT, processid TEXT NOT NULL, timestamp REAL NOT NULL, doc TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS q_logs_process ON q_logs (processid, timestamp);
        CREATE TABLE IF NOT EXISTS q_objects (
          seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, id TEXT NOT NULL, colonyname TEXT NOT NULL,
          doc TEXT NOT NULL, UNIQUE (kind, id));
        CREATE TABLE IF NOT EXISTS q_channels (
          seq INTEGER PRIMARY KEY AUTOINCREMENT, processid TEXT NOT NULL, colonyname TEXT NOT NULL, name TEXT NOT NULL,
          senderid TEXT NOT NULL, sequence INTEGER NOT NULL, doc TEXT NOT NULL,
          UNIQUE (processid, name, senderid, sequence));
        CREATE INDEX IF NOT EXISTS q_channels_read ON q_channels (processid, name, seq);`,
      postgres: `
        -- replicas of the release before this one create these tables under this lock
        SELECT pg_advisory_xact_lock(${0x61667175});
        CREATE TABLE IF NOT EXISTS affinetes_q_colonies (name TEXT PRIMARY KEY, colonyid TEXT NOT NULL, doc JSON NOT NULL);
        CREATE TABLE IF NOT EXISTS affinetes_q_executors (
          executorid TEXT PRIMARY KEY, colonyname TEXT NOT NULL, executorname TEXT NOT NULL, doc JSON NOT NULL,
          UNIQUE (colonyname, executorname));
        CREATE TABLE IF NOT EXISTS affinetes_q_processes (
          seq BIGSERIAL PRIMARY KEY,
          processid TEXT NOT NULL UNIQUE, colonyname TEXT NOT NULL, state SMALLINT NOT NULL,
          executortype TEXT NOT NULL, executornames JSONB NOT NULL, label TEXT NOT NULL,
          isassigned BOOLEAN NOT NULL, waitforparents BOOLEAN NOT NULL, prioritytime DOUBLE PRECISION NOT NULL,
          starttime DOUBLE PRECISION, endtime DOUBLE PRECISION, waitdeadline DOUBLE PRECISION,
          execdeadline DOUBLE PRECISION, graphid TEXT NOT NULL, doc JSON NOT NULL);
        CREATE INDEX IF NOT EXISTS affinetes_q_processes_queue
          ON affinetes_q_processes (colonyname, state, executortype, prioritytime);
        CREATE INDEX IF NOT EXISTS affinetes_q_processes_exec_deadline
          ON affinetes_q_processes (execdeadline) WHERE state = 1 AND execdeadline IS NOT NULL;
        CREATE INDEX IF NOT EXISTS affinetes_q_processes_wait_deadline
          ON affinetes_q_processes (waitdeadline) WHERE state = 0 AND waitdeadline IS NOT NULL;
        CREATE TABLE IF NOT EXISTS affinetes_q_graphs (
          seq BIGSERIAL, processgraphid TEXT PRIMARY KEY, colonyname TEXT NOT NULL, state SMALLINT NOT NULL,
          submitted DOUBLE PRECISION NOT NULL, doc JSON NOT NULL);
        CREATE INDEX IF NOT EXISTS affinetes_q_graphs_list ON affinetes_q_graphs (colonyname, state, submitted);
        CREATE TABLE IF NOT EXISTS affinetes_q_logs (
          seq BIGSERIAL PRIMARY KEY, processid TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, doc JSON NOT NULL);
        CREATE INDEX IF NOT EXISTS affinetes_q_logs_process ON affinetes_q_logs (processid, ts);
        CREATE TABLE IF NOT EXISTS affinetes_q_objects (
          seq BIGSERIAL, kind TEXT NOT NULL, id TEXT NOT NULL, colonyname TEXT NOT NULL, doc JSON NOT NULL,
          PRIMARY KEY (kind, id));
        CREATE TABLE IF NOT EXISTS affinetes_q_channels (
          seq BIGSERIAL PRIMARY KEY, processid TEXT NOT NULL, colonyname TEXT NOT NULL, name TEXT NOT NULL,
          senderid TEXT NOT NULL, sequence BIGINT NOT NULL, doc JSON NOT NULL,
          UNIQUE (processid, name, senderid, sequence));
        CREATE INDEX IF NOT EXISTS affinetes_q_channels_read ON affinetes_q_channels (processid, name, seq);`,
    },
    {
      description:
        "one layout on both engines: SQLite's tables take PostgreSQL's names, its logs' `timestamp` " +
        "becomes `ts`, its graphs gain a seq (graphs of one submission time list newest first) and it " +
        "gains the deadline and graph-listing indexes it lacked",
      sqlite: `
        ${RENAMED.map((t) => `ALTER TABLE q_${t} RENAME TO affinetes_q_${t};`).join("\n")}
        ALTER TABLE affinetes_q_logs RENAME COLUMN timestamp TO ts;
        CREATE TABLE affinetes_q_graphs (
          seq INTEGER PRIMARY KEY, processgraphid TEXT NOT NULL UNIQUE, colonyname TEXT NOT NULL,
          state INTEGER NOT NULL, submitted REAL NOT NULL, doc TEXT NOT NULL);
        INSERT INTO affinetes_q_graphs (seq, processgraphid, colonyname, state, submitted, doc)
          SELECT rowid, processgraphid, colonyname, state, submitted, doc FROM q_graphs ORDER BY rowid;
        DROP TABLE q_graphs;
        DROP INDEX q_processes_queue;
        DROP INDEX q_logs_process;
        DROP INDEX q_channels_read;
        CREATE INDEX affinetes_q_processes_queue
          ON affinetes_q_processes (colonyname, state, executortype, prioritytime);
        CREATE INDEX affinetes_q_processes_exec_deadline
          ON affinetes_q_processes (execdeadline) WHERE state = 1 AND execdeadline IS NOT NULL;
        CREATE INDEX affinetes_q_processes_wait_deadline
          ON affinetes_q_processes (waitdeadline) WHERE state = 0 AND waitdeadline IS NOT NULL;
        CREATE INDEX affinetes_q_graphs_list ON affinetes_q_graphs (colonyname, state, submitted);
        CREATE INDEX affinetes_q_logs_process ON affinetes_q_logs (processid, ts);
        CREATE INDEX affinetes_q_channels_read ON affinetes_q_channels (processid, name, seq);`,
    },
  ],
};
