import pg from "pg";
import { ConflictError } from "../../errors.js";
import type {
  ChannelEntry,
  Colony,
  Executor,
  LogEntry,
  Process,
  ProcessGraph,
  ProcessState,
  User,
} from "../model.js";
import { RUNNING, WAITING, timeMs } from "../model.js";
import type { AssignRequest, ObjectKind, QueueStore } from "../queue-store.js";
import { stillAssigned } from "../queue-store.js";

// The SQLite store's schema. Documents are `json`, not `jsonb`: jsonb refuses "\u0000"
// (a log line or an argument may hold one) and reorders keys, and no query looks inside
// a document. Times are doubles: prioritytime is a ns timestamp held in a JS number
// (~1.7e18, past 2^53, negative for high priorities), which a double keeps as it is.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS affinetes_q_colonies (name TEXT PRIMARY KEY, colonyid TEXT NOT NULL, doc JSON NOT NULL);
CREATE TABLE IF NOT EXISTS affinetes_q_executors (
  executorid TEXT PRIMARY KEY, colonyname TEXT NOT NULL, executorname TEXT NOT NULL, doc JSON NOT NULL,
  UNIQUE (colonyname, executorname)
);
CREATE TABLE IF NOT EXISTS affinetes_q_processes (
  seq BIGSERIAL PRIMARY KEY,
  processid TEXT NOT NULL UNIQUE, colonyname TEXT NOT NULL, state SMALLINT NOT NULL,
  executortype TEXT NOT NULL, executornames JSONB NOT NULL, label TEXT NOT NULL,
  isassigned BOOLEAN NOT NULL, waitforparents BOOLEAN NOT NULL, prioritytime DOUBLE PRECISION NOT NULL,
  starttime DOUBLE PRECISION, endtime DOUBLE PRECISION, waitdeadline DOUBLE PRECISION,
  execdeadline DOUBLE PRECISION, graphid TEXT NOT NULL, doc JSON NOT NULL
);
CREATE INDEX IF NOT EXISTS affinetes_q_processes_queue
  ON affinetes_q_processes (colonyname, state, executortype, prioritytime);
CREATE INDEX IF NOT EXISTS affinetes_q_processes_exec_deadline
  ON affinetes_q_processes (execdeadline) WHERE state = 1 AND execdeadline IS NOT NULL;
CREATE INDEX IF NOT EXISTS affinetes_q_processes_wait_deadline
  ON affinetes_q_processes (waitdeadline) WHERE state = 0 AND waitdeadline IS NOT NULL;
CREATE TABLE IF NOT EXISTS affinetes_q_graphs (
  seq BIGSERIAL,
  processgraphid TEXT PRIMARY KEY, colonyname TEXT NOT NULL, state SMALLINT NOT NULL,
  submitted DOUBLE PRECISION NOT NULL, doc JSON NOT NULL
);
CREATE INDEX IF NOT EXISTS affinetes_q_graphs_list ON affinetes_q_graphs (colonyname, state, submitted);
CREATE TABLE IF NOT EXISTS affinetes_q_logs (
  seq BIGSERIAL PRIMARY KEY, processid TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, doc JSON NOT NULL
);
CREATE INDEX IF NOT EXISTS affinetes_q_logs_process ON affinetes_q_logs (processid, ts);
CREATE TABLE IF NOT EXISTS affinetes_q_objects (
  seq BIGSERIAL, kind TEXT NOT NULL, id TEXT NOT NULL, colonyname TEXT NOT NULL, doc JSON NOT NULL,
  PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS affinetes_q_channels (
  seq BIGSERIAL PRIMARY KEY, processid TEXT NOT NULL, colonyname TEXT NOT NULL, name TEXT NOT NULL,
  senderid TEXT NOT NULL, sequence BIGINT NOT NULL, doc JSON NOT NULL,
  UNIQUE (processid, name, senderid, sequence)
);
CREATE INDEX IF NOT EXISTS affinetes_q_channels_read ON affinetes_q_channels (processid, name, seq);
`;

/**
 * Any constant: replicas starting together create the schema one at a time (concurrent
 * CREATE TABLE IF NOT EXISTS can still collide in the catalog).
 */
const SCHEMA_LOCK = 0x61667175; // "afqu"

const UNIQUE_VIOLATION = "23505";

const PROCESS_COLUMNS = [
  "processid",
  "colonyname",
  "state",
  "executortype",
  "executornames",
  "label",
  "isassigned",
  "waitforparents",
  "prioritytime",
  "starttime",
  "endtime",
  "waitdeadline",
  "execdeadline",
  "graphid",
  "doc",
] as const;

const INSERT_PROCESS = `INSERT INTO affinetes_q_processes (${PROCESS_COLUMNS.join(", ")})
  VALUES (${PROCESS_COLUMNS.map((_, i) => `$${i + 1}`).join(", ")})`;

// $1 is the process id; the other columns follow in PROCESS_COLUMNS order.
const UPDATE_PROCESS = `UPDATE affinetes_q_processes SET ${PROCESS_COLUMNS.slice(1)
  .map((column, i) => `${column} = $${i + 2}`)
  .join(", ")} WHERE processid = $1`;

type Queryable = Pick<pg.PoolClient, "query">;

/**
 * The process queue in PostgreSQL, for several service replicas sharing one database.
 * Assignment locks the picked row (`FOR UPDATE SKIP LOCKED`) in a transaction, so two
 * replicas never hand out the same process, and neither waits on the other's pick.
 */
export class PostgresQueueStore implements QueueStore {
  private closed: Promise<void> | undefined;

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects (`postgres://user:pass@host:port/db`) and creates the tables when missing. */
  static async connect(url: string): Promise<PostgresQueueStore> {
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    const store = new PostgresQueueStore(pool);
    try {
      await store.transaction(async (client) => {
        await client.query("SELECT pg_advisory_xact_lock($1)", [SCHEMA_LOCK]);
        await client.query(SCHEMA);
      });
    } catch (err) {
      await pool.end();
      throw err;
    }
    return store;
  }

  async addColony(colony: Colony): Promise<void> {
    await this.pool
      .query("INSERT INTO affinetes_q_colonies (name, colonyid, doc) VALUES ($1, $2, $3)", [
        colony.name,
        colony.colonyid,
        JSON.stringify(colony),
      ])
      .catch(rethrowConflict("colony", colony.name));
  }

  async getColony(name: string): Promise<Colony | undefined> {
    return this.one<Colony>("SELECT doc FROM affinetes_q_colonies WHERE name = $1", [name]);
  }

  async listColonies(): Promise<Colony[]> {
    return this.all<Colony>("SELECT doc FROM affinetes_q_colonies ORDER BY name");
  }

  async removeColony(name: string): Promise<boolean> {
    return this.transaction(async (client) => {
      for (const table of [
        "affinetes_q_executors",
        "affinetes_q_processes",
        "affinetes_q_graphs",
        "affinetes_q_objects",
        "affinetes_q_channels",
      ]) {
        await client.query(`DELETE FROM ${table} WHERE colonyname = $1`, [name]);
      }
      await removeOrphans(client);
      const removed = await client.query("DELETE FROM affinetes_q_colonies WHERE name = $1", [name]);
      return (removed.rowCount ?? 0) > 0;
    });
  }

  async membership(
    colonyname: string,
    id: string,
  ): Promise<{ colony: Colony | undefined; user: User | undefined; executor: Executor | undefined }> {
    // one round trip: every signed call asks this
    const { rows } = await this.pool.query<{
      colony: Colony | null;
      usr: User | null;
      executor: Executor | null;
    }>(
      `SELECT (SELECT doc FROM affinetes_q_colonies WHERE name = $1) AS colony,
              (SELECT doc FROM affinetes_q_objects WHERE kind = 'user' AND id = $2) AS usr,
              (SELECT doc FROM affinetes_q_executors WHERE executorid = $2) AS executor`,
      [colonyname, id],
    );
    const row = rows[0];
    return {
      colony: row?.colony ?? undefined,
      user: row?.usr ?? undefined,
      executor: row?.executor ?? undefined,
    };
  }

  async addExecutor(executor: Executor): Promise<void> {
    await this.pool
      .query(
        "INSERT INTO affinetes_q_executors (executorid, colonyname, executorname, doc) VALUES ($1, $2, $3, $4)",
        [executor.executorid, executor.colonyname, executor.executorname, JSON.stringify(executor)],
      )
      .catch(rethrowConflict("executor", `${executor.colonyname}/${executor.executorname}`));
  }

  async getExecutor(colonyname: string, executorname: string): Promise<Executor | undefined> {
    return this.one<Executor>(
      "SELECT doc FROM affinetes_q_executors WHERE colonyname = $1 AND executorname = $2",
      [colonyname, executorname],
    );
  }

  async getExecutorById(executorid: string): Promise<Executor | undefined> {
    return this.one<Executor>("SELECT doc FROM affinetes_q_executors WHERE executorid = $1", [executorid]);
  }

  async listExecutors(colonyname: string): Promise<Executor[]> {
    return this.all<Executor>(
      "SELECT doc FROM affinetes_q_executors WHERE colonyname = $1 ORDER BY executorname",
      [colonyname],
    );
  }

  async updateExecutor(executor: Executor): Promise<void> {
    await this.pool.query("UPDATE affinetes_q_executors SET doc = $2 WHERE executorid = $1", [
      executor.executorid,
      JSON.stringify(executor),
    ]);
  }

  async removeExecutor(colonyname: string, executorname: string): Promise<boolean> {
    const removed = await this.pool.query(
      "DELETE FROM affinetes_q_executors WHERE colonyname = $1 AND executorname = $2",
      [colonyname, executorname],
    );
    return (removed.rowCount ?? 0) > 0;
  }

  async addProcesses(processes: readonly Process[], graph?: ProcessGraph): Promise<void> {
    // one statement is atomic by itself: a single submit needs no BEGIN/COMMIT round trips
    if (processes.length === 1 && !graph) {
      const process = processes[0] as Process;
      await this.pool
        .query(INSERT_PROCESS, rowOf(process))
        .catch(rethrowConflict("process", process.processid));
      return;
    }
    await this.transaction(async (client) => {
      for (const process of processes) {
        await client
          .query(INSERT_PROCESS, rowOf(process))
          .catch(rethrowConflict("process", process.processid));
      }
      if (graph) {
        await client
          .query(
            `INSERT INTO affinetes_q_graphs (processgraphid, colonyname, state, submitted, doc)
             VALUES ($1, $2, $3, $4, $5)`,
            [
              graph.processgraphid,
              graph.colonyname,
              graph.state,
              timeMs(graph.submissiontime) ?? 0,
              JSON.stringify(graph),
            ],
          )
          .catch(rethrowConflict("process graph", graph.processgraphid));
      }
    });
  }

  async getProcess(processid: string): Promise<Process | undefined> {
    return this.one<Process>("SELECT doc FROM affinetes_q_processes WHERE processid = $1", [processid]);
  }

  async getProcesses(processids: readonly string[]): Promise<Process[]> {
    if (processids.length === 0) return [];
    const { rows } = await this.pool.query<{ doc: Process }>(
      "SELECT doc FROM affinetes_q_processes WHERE processid = ANY($1::text[])",
      [processids],
    );
    const byId = new Map(rows.map((row) => [row.doc.processid, row.doc]));
    return processids.flatMap((id) => byId.get(id) ?? []);
  }

  async listProcesses(filter: {
    colonyname: string;
    state: ProcessState;
    count: number;
    executortype?: string;
    label?: string;
  }): Promise<Process[]> {
    // NULLS FIRST/LAST as SQLite sorts them, so both stores list alike
    const order =
      filter.state === WAITING
        ? "prioritytime, seq"
        : filter.state === RUNNING
          ? "starttime NULLS FIRST, seq"
          : "endtime DESC NULLS LAST, seq DESC";
    return this.all<Process>(
      `SELECT doc FROM affinetes_q_processes WHERE colonyname = $1 AND state = $2
         AND ($3::text = '' OR executortype = $3) AND ($4::text = '' OR label = $4)
       ORDER BY ${order} LIMIT $5`,
      [filter.colonyname, filter.state, filter.executortype ?? "", filter.label ?? "", limitOf(filter.count)],
    );
  }

  async updateProcesses(processes: readonly Process[]): Promise<void> {
    if (processes.length === 0) return;
    // one statement is atomic by itself: no BEGIN/COMMIT round trips for the common single close
    if (processes.length === 1) await this.pool.query(UPDATE_PROCESS, rowOf(processes[0] as Process));
    else await this.transaction((client) => writeProcesses(client, processes));
  }

  async removeProcess(processid: string): Promise<boolean> {
    return this.transaction(async (client) => {
      for (const table of ["affinetes_q_logs", "affinetes_q_channels"]) {
        await client.query(`DELETE FROM ${table} WHERE processid = $1`, [processid]);
      }
      const removed = await client.query("DELETE FROM affinetes_q_processes WHERE processid = $1", [
        processid,
      ]);
      return (removed.rowCount ?? 0) > 0;
    });
  }

  async removeProcesses(filter: { colonyname: string; state?: ProcessState }): Promise<number> {
    return this.transaction(async (client) => {
      const removed = await client.query(
        `DELETE FROM affinetes_q_processes WHERE colonyname = $1 AND graphid = ''
           ${filter.state === undefined ? "" : "AND state = $2"}`,
        [filter.colonyname, ...(filter.state === undefined ? [] : [filter.state])],
      );
      await removeOrphans(client);
      return removed.rowCount ?? 0;
    });
  }

  async removeGraphs(
    filter: { processgraphid: string } | { colonyname: string; state?: ProcessState },
  ): Promise<number> {
    const [where, params] =
      "processgraphid" in filter
        ? ["processgraphid = $1", [filter.processgraphid]]
        : filter.state === undefined
          ? ["colonyname = $1", [filter.colonyname]]
          : ["colonyname = $1 AND state = $2", [filter.colonyname, filter.state]];
    return this.transaction(async (client) => {
      await client.query(
        `DELETE FROM affinetes_q_processes
           WHERE graphid IN (SELECT processgraphid FROM affinetes_q_graphs WHERE ${where})`,
        params,
      );
      const removed = await client.query(`DELETE FROM affinetes_q_graphs WHERE ${where}`, params);
      await removeOrphans(client);
      return removed.rowCount ?? 0;
    });
  }

  async appendChannel(
    processid: string,
    colonyname: string,
    name: string,
    entry: ChannelEntry,
  ): Promise<void> {
    await this.pool.query(
      `INSERT INTO affinetes_q_channels (processid, colonyname, name, senderid, sequence, doc)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (processid, name, senderid, sequence) DO NOTHING`,
      [processid, colonyname, name, entry.senderid, entry.sequence, JSON.stringify(entry)],
    );
  }

  async readChannel(processid: string, name: string, after: number, limit: number): Promise<ChannelEntry[]> {
    return this.all<ChannelEntry>(
      `SELECT doc FROM affinetes_q_channels WHERE processid = $1 AND name = $2
         ORDER BY seq LIMIT $3 OFFSET $4`,
      [processid, name, limit > 0 ? limit : null, Math.max(0, after)],
    );
  }

  async assign(request: AssignRequest, start: (process: Process) => Process): Promise<Process | undefined> {
    return this.transaction(async (client) => {
      // SKIP LOCKED: a row another replica is taking right now is passed over, not waited on
      const { rows } = await client.query<{ doc: Process }>(
        `SELECT doc FROM affinetes_q_processes
         WHERE colonyname = $1 AND state = 0 AND NOT isassigned AND NOT waitforparents AND executortype = $2
           AND (executornames = '[]'::jsonb OR executornames ? $3)
         ORDER BY prioritytime, seq LIMIT 1
         FOR UPDATE SKIP LOCKED`,
        [request.colonyname, request.executortype, request.executorname],
      );
      const process = rows[0]?.doc;
      if (!process) return undefined;
      const started = start(process);
      await writeProcesses(client, [started]);
      return started;
    });
  }

  async release(
    assigned: { processid: string; executorid: string; starttime: string },
    back: (process: Process) => Process,
  ): Promise<Process | undefined> {
    return this.transaction(async (client) => {
      const { rows } = await client.query<{ doc: Process }>(
        "SELECT doc FROM affinetes_q_processes WHERE processid = $1 AND state = 1 FOR UPDATE",
        [assigned.processid],
      );
      const process = rows[0]?.doc;
      if (!process || !stillAssigned(process, assigned)) return undefined;
      const returned = back(process);
      await writeProcesses(client, [returned]);
      return returned;
    });
  }

  async pastDeadlines(nowMs: number): Promise<{ running: Process[]; waiting: Process[] }> {
    return {
      running: await this.all<Process>(
        "SELECT doc FROM affinetes_q_processes WHERE state = 1 AND execdeadline IS NOT NULL AND execdeadline < $1",
        [nowMs],
      ),
      waiting: await this.all<Process>(
        "SELECT doc FROM affinetes_q_processes WHERE state = 0 AND waitdeadline IS NOT NULL AND waitdeadline < $1",
        [nowMs],
      ),
    };
  }

  async countByState(colonyname: string): Promise<{ processes: number[]; graphs: number[] }> {
    const counts = async (table: string) => {
      const out = [0, 0, 0, 0];
      const { rows } = await this.pool.query<{ state: number; n: string }>(
        `SELECT state, COUNT(*) AS n FROM ${table} WHERE colonyname = $1 GROUP BY state`,
        [colonyname],
      );
      for (const row of rows) out[row.state] = Number(row.n);
      return out;
    };
    return { processes: await counts("affinetes_q_processes"), graphs: await counts("affinetes_q_graphs") };
  }

  async getGraph(processgraphid: string): Promise<ProcessGraph | undefined> {
    return this.one<ProcessGraph>("SELECT doc FROM affinetes_q_graphs WHERE processgraphid = $1", [
      processgraphid,
    ]);
  }

  async updateGraph(graph: ProcessGraph): Promise<void> {
    await this.pool.query("UPDATE affinetes_q_graphs SET state = $2, doc = $3 WHERE processgraphid = $1", [
      graph.processgraphid,
      graph.state,
      JSON.stringify(graph),
    ]);
  }

  async listGraphs(filter: {
    colonyname: string;
    state: ProcessState;
    count: number;
  }): Promise<ProcessGraph[]> {
    return this.all<ProcessGraph>(
      `SELECT doc FROM affinetes_q_graphs WHERE colonyname = $1 AND state = $2
       ORDER BY submitted DESC, seq DESC LIMIT $3`,
      [filter.colonyname, filter.state, limitOf(filter.count)],
    );
  }

  async putObject(kind: ObjectKind, id: string, colonyname: string, doc: object): Promise<boolean> {
    // the WHERE of the upsert: an object of another colony or executor is never replaced
    const put = await this.pool.query(
      `INSERT INTO affinetes_q_objects (kind, id, colonyname, doc) VALUES ($1, $2, $3, $4)
       ON CONFLICT (kind, id) DO UPDATE SET doc = EXCLUDED.doc
       WHERE affinetes_q_objects.colonyname = EXCLUDED.colonyname
         AND (affinetes_q_objects.doc ->> 'executorname') IS NOT DISTINCT FROM (EXCLUDED.doc ->> 'executorname')`,
      [kind, id, colonyname, JSON.stringify(doc)],
    );
    return (put.rowCount ?? 0) > 0;
  }

  async getObject<T>(kind: ObjectKind, id: string): Promise<T | undefined> {
    return this.one<T>("SELECT doc FROM affinetes_q_objects WHERE kind = $1 AND id = $2", [kind, id]);
  }

  async listObjects<T>(kind: ObjectKind, colonyname: string): Promise<T[]> {
    return this.all<T>(
      "SELECT doc FROM affinetes_q_objects WHERE kind = $1 AND colonyname = $2 ORDER BY seq",
      [kind, colonyname],
    );
  }

  async deleteObject(kind: ObjectKind, id: string): Promise<boolean> {
    const result = await this.pool.query("DELETE FROM affinetes_q_objects WHERE kind = $1 AND id = $2", [
      kind,
      id,
    ]);
    return (result.rowCount ?? 0) > 0;
  }

  async addLog(entry: LogEntry): Promise<void> {
    await this.pool.query("INSERT INTO affinetes_q_logs (processid, ts, doc) VALUES ($1, $2, $3)", [
      entry.processid,
      entry.timestamp,
      JSON.stringify(entry),
    ]);
  }

  async getLogs(filter: { processid: string; count: number; since: number }): Promise<LogEntry[]> {
    return this.all<LogEntry>(
      "SELECT doc FROM affinetes_q_logs WHERE processid = $1 AND ts > $2 ORDER BY ts, seq LIMIT $3",
      [filter.processid, filter.since, limitOf(filter.count)],
    );
  }

  /** Idempotent. */
  async close(): Promise<void> {
    this.closed ??= this.pool.end();
    await this.closed;
  }

  private async one<T>(sql: string, params: unknown[]): Promise<T | undefined> {
    const { rows } = await this.pool.query<{ doc: T }>(sql, params);
    return rows[0]?.doc;
  }

  private async all<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    const { rows } = await this.pool.query<{ doc: T }>(sql, params);
    return rows.map((row) => row.doc);
  }

  /** Runs `work` in a transaction on one connection: committed if it resolves, rolled back if not. */
  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const result = await work(client);
      await client.query("COMMIT");
      return result;
    } catch (err) {
      // a connection that cannot even roll back is dropped, not returned to the pool
      await client.query("ROLLBACK").catch((rollbackErr: Error) => (broken = rollbackErr));
      throw err;
    } finally {
      client.release(broken);
    }
  }
}

/** Writes processes back, inside the caller's transaction. */
async function writeProcesses(client: Queryable, processes: readonly Process[]): Promise<void> {
  for (const process of processes) await client.query(UPDATE_PROCESS, rowOf(process));
}

/** The row of a process, in PROCESS_COLUMNS order. */
function rowOf(process: Process): unknown[] {
  return [
    process.processid,
    process.spec.conditions.colonyname,
    process.state,
    process.spec.conditions.executortype,
    JSON.stringify(process.spec.conditions.executornames),
    process.spec.label,
    process.isassigned,
    process.waitforparents,
    process.prioritytime,
    timeMs(process.starttime) ?? null,
    timeMs(process.endtime) ?? null,
    timeMs(process.waitdeadline) ?? null,
    timeMs(process.execdeadline) ?? null,
    process.processgraphid,
    JSON.stringify(process),
  ];
}

/** SQLite reads a negative LIMIT as none; PostgreSQL refuses it (LIMIT NULL is none there). */
/** Logs and channel entries of processes no longer stored. */
async function removeOrphans(client: Queryable): Promise<void> {
  for (const table of ["affinetes_q_logs", "affinetes_q_channels"]) {
    await client.query(
      `DELETE FROM ${table} t WHERE NOT EXISTS (SELECT 1 FROM affinetes_q_processes p WHERE p.processid = t.processid)`,
    );
  }
}

function limitOf(count: number): number | null {
  return count < 0 ? null : count;
}

function rethrowConflict(kind: string, id: string): (err: unknown) => never {
  return (err: unknown) => {
    if ((err as { code?: unknown } | null)?.code === UNIQUE_VIOLATION) throw new ConflictError(kind, id);
    throw err;
  };
}
