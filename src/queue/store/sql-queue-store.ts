import { ConflictError } from "../../errors.js";
import type { Database, Queryable } from "../../store/database.js";
import { migrate } from "../../store/migrate.js";
import { openOwning } from "../../store/open-database.js";
import { SqlStore } from "../../store/sql-store.js";
import { AssignWaiters } from "../assign-waiters.js";
import type { ChannelEntry, Colony, Executor, LogEntry, Process, ProcessGraph } from "../model.js";
import { RUNNING, WAITING, timeMs } from "../model.js";
import { INSERT_PROCESS, UPDATE_PROCESS, rowOf, writeProcesses } from "./process-rows.js";
import type { AssignRequest, ObjectKind, QueueStore } from "../queue-store.js";
import { stillAssigned } from "../queue-store.js";
import { QUEUE_TABLES } from "./queue-migrations.js";

/** A process state, as the queue selects on it. */
type ProcessState = Process["state"];

/** Tables holding a colony's rows (`colonyname`), besides the colony itself. */
const COLONY_TABLES = [
  "affinetes_q_executors",
  "affinetes_q_processes",
  "affinetes_q_graphs",
  "affinetes_q_objects",
  "affinetes_q_channels",
];
/** Tables holding a process's rows (`processid`), besides the process itself. */
const PROCESS_TABLES = ["affinetes_q_logs", "affinetes_q_channels"];

/**
 * The process queue in SQLite or PostgreSQL. Assignment reads and marks the picked
 * process in one transaction: SQLite's one writer excludes every other; PostgreSQL locks
 * the picked row (`FOR UPDATE SKIP LOCKED`), so replicas never hand out the same process
 * and neither waits on the other's pick.
 */
export class SqlQueueStore extends SqlStore implements QueueStore {
  private constructor(
    db: Database,
    private readonly waiters: AssignWaiters,
    ownsDatabase: boolean,
  ) {
    super(db, ownsDatabase);
  }

  /** The store on the service's database, its tables migrated first; closing it leaves the database open. */
  static async open(db: Database, options: { ownsDatabase?: boolean } = {}): Promise<SqlQueueStore> {
    await migrate(db, QUEUE_TABLES);
    return new SqlQueueStore(db, await AssignWaiters.start(db), options.ownsDatabase ?? false);
  }

  async addColony(colony: Colony): Promise<void> {
    await this.db
      .run("INSERT INTO affinetes_q_colonies (name, colonyid, doc) VALUES ($1, $2, $3)", [
        colony.name,
        colony.colonyid,
        JSON.stringify(colony),
      ])
      .catch(this.rethrowConflict("colony", colony.name));
  }

  getColony(name: string): Promise<Colony | undefined> {
    return one<Colony>(this.db, "SELECT doc FROM affinetes_q_colonies WHERE name = $1", [name]);
  }

  listColonies(): Promise<Colony[]> {
    return all<Colony>(this.db, "SELECT doc FROM affinetes_q_colonies ORDER BY name");
  }

  removeColony(name: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      for (const table of COLONY_TABLES) await tx.run(`DELETE FROM ${table} WHERE colonyname = $1`, [name]);
      await removeOrphans(tx);
      return (await tx.run("DELETE FROM affinetes_q_colonies WHERE name = $1", [name])) > 0;
    });
  }

  async membership(colonyname: string, id: string): ReturnType<QueueStore["membership"]> {
    // one round trip: every signed call asks this
    const [row] = await this.db.query<{ colony: string | null; usr: string | null; executor: string | null }>(
      `SELECT (SELECT doc FROM affinetes_q_colonies WHERE name = $1) AS colony,
              (SELECT doc FROM affinetes_q_objects WHERE kind = 'user' AND id = $2) AS usr,
              (SELECT doc FROM affinetes_q_executors WHERE executorid = $2) AS executor`,
      [colonyname, id],
    );
    return {
      colony: parsed<Colony>(row?.colony),
      user: parsed(row?.usr),
      executor: parsed<Executor>(row?.executor),
    };
  }

  async addExecutor(executor: Executor): Promise<void> {
    await this.db
      .run(
        "INSERT INTO affinetes_q_executors (executorid, colonyname, executorname, doc) VALUES ($1, $2, $3, $4)",
        [executor.executorid, executor.colonyname, executor.executorname, JSON.stringify(executor)],
      )
      .catch(this.rethrowConflict("executor", `${executor.colonyname}/${executor.executorname}`));
  }

  getExecutor(colonyname: string, executorname: string): Promise<Executor | undefined> {
    return one<Executor>(
      this.db,
      "SELECT doc FROM affinetes_q_executors WHERE colonyname = $1 AND executorname = $2",
      [colonyname, executorname],
    );
  }

  getExecutorById(executorid: string): Promise<Executor | undefined> {
    return one<Executor>(this.db, "SELECT doc FROM affinetes_q_executors WHERE executorid = $1", [
      executorid,
    ]);
  }

  listExecutors(colonyname: string): Promise<Executor[]> {
    return all<Executor>(
      this.db,
      "SELECT doc FROM affinetes_q_executors WHERE colonyname = $1 ORDER BY executorname",
      [colonyname],
    );
  }

  async updateExecutor(executor: Executor): Promise<void> {
    await this.db.run("UPDATE affinetes_q_executors SET doc = $2 WHERE executorid = $1", [
      executor.executorid,
      JSON.stringify(executor),
    ]);
  }

  async removeExecutor(colonyname: string, executorname: string): Promise<boolean> {
    const removed = await this.db.run(
      "DELETE FROM affinetes_q_executors WHERE colonyname = $1 AND executorname = $2",
      [colonyname, executorname],
    );
    return removed > 0;
  }

  async addProcesses(processes: readonly Process[], graph?: ProcessGraph): Promise<void> {
    // one statement is atomic by itself: a single submit needs no BEGIN/COMMIT round trips
    if (processes.length === 1 && !graph) {
      const process = processes[0] as Process;
      await this.db
        .run(INSERT_PROCESS, rowOf(process))
        .catch(this.rethrowConflict("process", process.processid));
      return;
    }
    await this.db.transaction(async (tx) => {
      for (const process of processes)
        await tx
          .run(INSERT_PROCESS, rowOf(process))
          .catch(this.rethrowConflict("process", process.processid));
      if (!graph) return;
      await tx
        .run(
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
        .catch(this.rethrowConflict("process graph", graph.processgraphid));
    });
  }

  getProcess(processid: string): Promise<Process | undefined> {
    return one<Process>(this.db, "SELECT doc FROM affinetes_q_processes WHERE processid = $1", [processid]);
  }

  async getProcesses(processids: readonly string[]): Promise<Process[]> {
    if (processids.length === 0) return [];
    const found = await all<Process>(
      this.db,
      `SELECT doc FROM affinetes_q_processes WHERE ${this.db.dialect.inList("processid", "$1")}`,
      [this.db.dialect.list(processids)],
    );
    const byId = new Map(found.map((p) => [p.processid, p]));
    return processids.flatMap((id) => byId.get(id) ?? []);
  }

  listProcesses(filter: Parameters<QueueStore["listProcesses"]>[0]): Promise<Process[]> {
    const order =
      filter.state === WAITING
        ? "prioritytime, seq"
        : filter.state === RUNNING
          ? "starttime NULLS FIRST, seq"
          : "endtime DESC NULLS LAST, seq DESC";
    return all<Process>(
      this.db,
      `SELECT doc FROM affinetes_q_processes WHERE colonyname = $1 AND state = $2
         AND (CAST($3 AS TEXT) = '' OR executortype = $3) AND (CAST($4 AS TEXT) = '' OR label = $4)
       ORDER BY ${order} LIMIT $5`,
      [
        filter.colonyname,
        filter.state,
        filter.executortype ?? "",
        filter.label ?? "",
        this.limit(filter.count),
      ],
    );
  }

  async updateProcesses(processes: readonly Process[]): Promise<void> {
    if (processes.length === 0) return;
    // one statement is atomic by itself: no BEGIN/COMMIT round trips for the common single close
    if (processes.length === 1) await this.db.run(UPDATE_PROCESS, rowOf(processes[0] as Process));
    else await this.db.transaction((tx) => writeProcesses(tx, processes));
  }

  removeProcess(processid: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      for (const table of PROCESS_TABLES)
        await tx.run(`DELETE FROM ${table} WHERE processid = $1`, [processid]);
      return (await tx.run("DELETE FROM affinetes_q_processes WHERE processid = $1", [processid])) > 0;
    });
  }

  removeProcesses(filter: { colonyname: string; state?: ProcessState }): Promise<number> {
    const byState = filter.state === undefined ? "" : "AND state = $2";
    return this.db.transaction(async (tx) => {
      const removed = await tx.run(
        `DELETE FROM affinetes_q_processes WHERE colonyname = $1 AND graphid = '' ${byState}`,
        [filter.colonyname, ...(filter.state === undefined ? [] : [filter.state])],
      );
      await removeOrphans(tx);
      return removed;
    });
  }

  removeGraphs(
    filter: { processgraphid: string } | { colonyname: string; state?: ProcessState },
  ): Promise<number> {
    const [where, params] =
      "processgraphid" in filter
        ? ["processgraphid = $1", [filter.processgraphid]]
        : filter.state === undefined
          ? ["colonyname = $1", [filter.colonyname]]
          : ["colonyname = $1 AND state = $2", [filter.colonyname, filter.state]];
    return this.db.transaction(async (tx) => {
      await tx.run(
        `DELETE FROM affinetes_q_processes
           WHERE graphid IN (SELECT processgraphid FROM affinetes_q_graphs WHERE ${where})`,
        params,
      );
      const removed = await tx.run(`DELETE FROM affinetes_q_graphs WHERE ${where}`, params);
      await removeOrphans(tx);
      return removed;
    });
  }

  async appendChannel(
    processid: string,
    colonyname: string,
    name: string,
    entry: ChannelEntry,
  ): Promise<void> {
    await this.db.run(
      `INSERT INTO affinetes_q_channels (processid, colonyname, name, senderid, sequence, doc)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (processid, name, senderid, sequence) DO NOTHING`,
      [processid, colonyname, name, entry.senderid, entry.sequence, JSON.stringify(entry)],
    );
  }

  readChannel(processid: string, name: string, after: number, limit: number): Promise<ChannelEntry[]> {
    return all<ChannelEntry>(
      this.db,
      `SELECT doc FROM affinetes_q_channels WHERE processid = $1 AND name = $2
         ORDER BY seq LIMIT $3 OFFSET $4`,
      [processid, name, limit > 0 ? limit : this.db.dialect.noLimit, Math.max(0, after)],
    );
  }

  assign(request: AssignRequest, start: (process: Process) => Process): Promise<Process | undefined> {
    const { dialect } = this.db;
    return this.db.transaction(async (tx) => {
      // PostgreSQL: a row another replica is taking right now is passed over, not waited on
      const process = await one<Process>(
        tx,
        `SELECT doc FROM affinetes_q_processes
         WHERE colonyname = $1 AND state = 0 AND NOT isassigned AND NOT waitforparents AND executortype = $2
           AND (executornames = '[]' OR ${dialect.jsonArrayHas("executornames", "$3")})
         ORDER BY prioritytime, seq LIMIT 1${dialect.forUpdateSkipLocked}`,
        [request.colonyname, request.executortype, request.executorname],
      );
      if (!process) return undefined;
      const started = start(process);
      await writeProcesses(tx, [started]);
      return started;
    });
  }

  release(
    assigned: { processid: string; executorid: string; starttime: string },
    back: (process: Process) => Process,
  ): Promise<Process | undefined> {
    return this.db.transaction(async (tx) => {
      const process = await one<Process>(
        tx,
        `SELECT doc FROM affinetes_q_processes WHERE processid = $1 AND state = 1${tx.dialect.forUpdate}`,
        [assigned.processid],
      );
      if (!process || !stillAssigned(process, assigned)) return undefined;
      const returned = back(process);
      await writeProcesses(tx, [returned]);
      return returned;
    });
  }

  async pastDeadlines(nowMs: number): Promise<{ running: Process[]; waiting: Process[] }> {
    return {
      running: await all<Process>(
        this.db,
        "SELECT doc FROM affinetes_q_processes WHERE state = 1 AND execdeadline IS NOT NULL AND execdeadline < $1",
        [nowMs],
      ),
      waiting: await all<Process>(
        this.db,
        "SELECT doc FROM affinetes_q_processes WHERE state = 0 AND waitdeadline IS NOT NULL AND waitdeadline < $1",
        [nowMs],
      ),
    };
  }

  async countByState(colonyname: string): Promise<{ processes: number[]; graphs: number[] }> {
    const counts = async (table: string) => {
      const out = [0, 0, 0, 0];
      const rows = await this.db.query<{ state: number; n: number }>(
        `SELECT state, COUNT(*) AS n FROM ${table} WHERE colonyname = $1 GROUP BY state`,
        [colonyname],
      );
      for (const row of rows) out[row.state] = row.n;
      return out;
    };
    return { processes: await counts("affinetes_q_processes"), graphs: await counts("affinetes_q_graphs") };
  }

  getGraph(processgraphid: string): Promise<ProcessGraph | undefined> {
    return one<ProcessGraph>(this.db, "SELECT doc FROM affinetes_q_graphs WHERE processgraphid = $1", [
      processgraphid,
    ]);
  }

  async updateGraph(graph: ProcessGraph): Promise<void> {
    await this.db.run("UPDATE affinetes_q_graphs SET state = $2, doc = $3 WHERE processgraphid = $1", [
      graph.processgraphid,
      graph.state,
      JSON.stringify(graph),
    ]);
  }

  listGraphs(filter: { colonyname: string; state: ProcessState; count: number }): Promise<ProcessGraph[]> {
    return all<ProcessGraph>(
      this.db,
      `SELECT doc FROM affinetes_q_graphs WHERE colonyname = $1 AND state = $2
       ORDER BY submitted DESC, seq DESC LIMIT $3`,
      [filter.colonyname, filter.state, this.limit(filter.count)],
    );
  }

  async putObject(kind: ObjectKind, id: string, colonyname: string, doc: object): Promise<boolean> {
    // the WHERE of the upsert: an object of another colony or executor is never replaced
    const put = await this.db.run(
      `INSERT INTO affinetes_q_objects (kind, id, colonyname, doc) VALUES ($1, $2, $3, $4)
       ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc
       WHERE affinetes_q_objects.colonyname = excluded.colonyname
         AND (affinetes_q_objects.doc ->> 'executorname') IS NOT DISTINCT FROM (excluded.doc ->> 'executorname')`,
      [kind, id, colonyname, JSON.stringify(doc)],
    );
    return put > 0;
  }

  getObject<T>(kind: ObjectKind, id: string): Promise<T | undefined> {
    return one<T>(this.db, "SELECT doc FROM affinetes_q_objects WHERE kind = $1 AND id = $2", [kind, id]);
  }

  listObjects<T>(kind: ObjectKind, colonyname: string): Promise<T[]> {
    return all<T>(
      this.db,
      "SELECT doc FROM affinetes_q_objects WHERE kind = $1 AND colonyname = $2 ORDER BY seq",
      [kind, colonyname],
    );
  }

  async deleteObject(kind: ObjectKind, id: string): Promise<boolean> {
    return (await this.db.run("DELETE FROM affinetes_q_objects WHERE kind = $1 AND id = $2", [kind, id])) > 0;
  }

  async addLog(entry: LogEntry): Promise<void> {
    const values = [entry.processid, entry.timestamp, JSON.stringify(entry)];
    await this.db.run("INSERT INTO affinetes_q_logs (processid, ts, doc) VALUES ($1, $2, $3)", values);
  }

  getLogs(filter: { processid: string; count: number; since: number }): Promise<LogEntry[]> {
    return all<LogEntry>(
      this.db,
      "SELECT doc FROM affinetes_q_logs WHERE processid = $1 AND ts > $2 ORDER BY ts, seq LIMIT $3",
      [filter.processid, filter.since, this.limit(filter.count)],
    );
  }

  workSeen(colonyname: string, executortype: string): number {
    return this.waiters.seen(colonyname, executortype);
  }

  waitForWork(...args: Parameters<QueueStore["waitForWork"]>): Promise<boolean> {
    return this.waiters.wait(...args);
  }

  notifyWork(colonyname: string, executortype: string, count: number): void {
    this.waiters.notify(colonyname, executortype, count);
  }

  /** Ends every wait; idempotent. */
  override async close(): Promise<void> {
    this.waiters.close();
    await super.close();
  }

  /** A count as LIMIT takes it: a negative one is no limit. */
  private limit(count: number): number | null {
    return count < 0 ? this.db.dialect.noLimit : count;
  }

  private rethrowConflict(kind: string, id: string): (err: unknown) => never {
    return (err: unknown) => {
      if (this.db.dialect.isUniqueViolation(err)) throw new ConflictError(kind, id);
      throw err;
    };
  }
}

/** The queue's store on a database of its own at `location` (a SQLite file or a `postgres://` URL). */
export function openQueueStore(location: string): Promise<QueueStore> {
  return openOwning(location, SqlQueueStore.open);
}

async function one<T>(db: Queryable, sql: string, params: readonly unknown[]): Promise<T | undefined> {
  const [row] = await db.query<{ doc: string }>(sql, params);
  return parsed<T>(row?.doc);
}

async function all<T>(db: Queryable, sql: string, params: readonly unknown[] = []): Promise<T[]> {
  return (await db.query<{ doc: string }>(sql, params)).map((row) => JSON.parse(row.doc) as T);
}

function parsed<T>(doc: string | null | undefined): T | undefined {
  return doc == null ? undefined : (JSON.parse(doc) as T);
}

/** Logs and channel entries of processes no longer stored (inside the caller's transaction). */
async function removeOrphans(tx: Queryable): Promise<void> {
  for (const table of PROCESS_TABLES)
    await tx.run(
      `DELETE FROM ${table}
       WHERE NOT EXISTS (SELECT 1 FROM affinetes_q_processes p WHERE p.processid = ${table}.processid)`,
    );
}
