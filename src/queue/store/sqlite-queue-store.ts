import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
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

const SCHEMA = `
CREATE TABLE IF NOT EXISTS q_colonies (name TEXT PRIMARY KEY, colonyid TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS q_executors (
  executorid TEXT PRIMARY KEY, colonyname TEXT NOT NULL, executorname TEXT NOT NULL, doc TEXT NOT NULL,
  UNIQUE (colonyname, executorname)
);
CREATE TABLE IF NOT EXISTS q_processes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  processid TEXT NOT NULL UNIQUE, colonyname TEXT NOT NULL, state INTEGER NOT NULL,
  executortype TEXT NOT NULL, executornames TEXT NOT NULL, label TEXT NOT NULL,
  isassigned INTEGER NOT NULL, waitforparents INTEGER NOT NULL, prioritytime REAL NOT NULL,
  starttime REAL, endtime REAL, waitdeadline REAL, execdeadline REAL, graphid TEXT NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS q_processes_queue ON q_processes (colonyname, state, executortype, prioritytime);
CREATE TABLE IF NOT EXISTS q_graphs (
  processgraphid TEXT PRIMARY KEY, colonyname TEXT NOT NULL, state INTEGER NOT NULL, submitted REAL NOT NULL,
  doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS q_logs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, processid TEXT NOT NULL, timestamp REAL NOT NULL, doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS q_logs_process ON q_logs (processid, timestamp);
CREATE TABLE IF NOT EXISTS q_objects (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, id TEXT NOT NULL, colonyname TEXT NOT NULL,
  doc TEXT NOT NULL, UNIQUE (kind, id)
);
CREATE TABLE IF NOT EXISTS q_channels (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, processid TEXT NOT NULL, colonyname TEXT NOT NULL, name TEXT NOT NULL,
  senderid TEXT NOT NULL, sequence INTEGER NOT NULL, doc TEXT NOT NULL,
  UNIQUE (processid, name, senderid, sequence)
);
CREATE INDEX IF NOT EXISTS q_channels_read ON q_channels (processid, name, seq);
`;

/**
 * The process queue in SQLite (WAL): assignment is one IMMEDIATE transaction, so an
 * executor's pick is atomic also against other service processes sharing the file.
 */
export class SqliteQueueStore implements QueueStore {
  private readonly db: Database.Database;

  constructor(path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("busy_timeout = 10000");
    // WAL with NORMAL: a commit survives the service being killed (not a power cut), without an fsync each
    this.db.pragma("synchronous = NORMAL");
    this.db.exec(SCHEMA);
  }

  async addColony(colony: Colony): Promise<void> {
    try {
      this.db
        .prepare("INSERT INTO q_colonies (name, colonyid, doc) VALUES (?, ?, ?)")
        .run(colony.name, colony.colonyid, JSON.stringify(colony));
    } catch (err) {
      throw conflictOr(err, "colony", colony.name);
    }
  }

  async getColony(name: string): Promise<Colony | undefined> {
    return docOf<Colony>(this.db.prepare("SELECT doc FROM q_colonies WHERE name = ?").get(name));
  }

  async listColonies(): Promise<Colony[]> {
    return docsOf<Colony>(this.db.prepare("SELECT doc FROM q_colonies ORDER BY name").all());
  }

  async removeColony(name: string): Promise<boolean> {
    const remove = this.db.transaction(() => {
      for (const table of ["q_executors", "q_processes", "q_graphs", "q_objects", "q_channels"]) {
        this.db.prepare(`DELETE FROM ${table} WHERE colonyname = ?`).run(name);
      }
      this.removeOrphans();
      return this.db.prepare("DELETE FROM q_colonies WHERE name = ?").run(name).changes > 0;
    });
    return remove.immediate();
  }

  async membership(
    colonyname: string,
    id: string,
  ): Promise<{ colony: Colony | undefined; user: User | undefined; executor: Executor | undefined }> {
    return {
      colony: await this.getColony(colonyname),
      user: await this.getObject<User>("user", id),
      executor: await this.getExecutorById(id),
    };
  }

  async addExecutor(executor: Executor): Promise<void> {
    try {
      this.db
        .prepare("INSERT INTO q_executors (executorid, colonyname, executorname, doc) VALUES (?, ?, ?, ?)")
        .run(executor.executorid, executor.colonyname, executor.executorname, JSON.stringify(executor));
    } catch (err) {
      throw conflictOr(err, "executor", `${executor.colonyname}/${executor.executorname}`);
    }
  }

  async getExecutor(colonyname: string, executorname: string): Promise<Executor | undefined> {
    return docOf<Executor>(
      this.db
        .prepare("SELECT doc FROM q_executors WHERE colonyname = ? AND executorname = ?")
        .get(colonyname, executorname),
    );
  }

  async getExecutorById(executorid: string): Promise<Executor | undefined> {
    return docOf<Executor>(
      this.db.prepare("SELECT doc FROM q_executors WHERE executorid = ?").get(executorid),
    );
  }

  async listExecutors(colonyname: string): Promise<Executor[]> {
    return docsOf<Executor>(
      this.db
        .prepare("SELECT doc FROM q_executors WHERE colonyname = ? ORDER BY executorname")
        .all(colonyname),
    );
  }

  async updateExecutor(executor: Executor): Promise<void> {
    this.db
      .prepare("UPDATE q_executors SET doc = ? WHERE executorid = ?")
      .run(JSON.stringify(executor), executor.executorid);
  }

  async removeExecutor(colonyname: string, executorname: string): Promise<boolean> {
    return (
      this.db
        .prepare("DELETE FROM q_executors WHERE colonyname = ? AND executorname = ?")
        .run(colonyname, executorname).changes > 0
    );
  }

  async addProcesses(processes: readonly Process[], graph?: ProcessGraph): Promise<void> {
    const insert = this.db.prepare(
      `INSERT INTO q_processes (processid, colonyname, state, executortype, executornames, label, isassigned,
         waitforparents, prioritytime, starttime, endtime, waitdeadline, execdeadline, graphid, doc)
       VALUES (@processid, @colonyname, @state, @executortype, @executornames, @label, @isassigned,
         @waitforparents, @prioritytime, @starttime, @endtime, @waitdeadline, @execdeadline, @graphid, @doc)`,
    );
    const add = this.db.transaction(() => {
      for (const process of processes) insert.run(rowOf(process));
      if (graph) {
        this.db
          .prepare(
            "INSERT INTO q_graphs (processgraphid, colonyname, state, submitted, doc) VALUES (?, ?, ?, ?, ?)",
          )
          .run(
            graph.processgraphid,
            graph.colonyname,
            graph.state,
            timeMs(graph.submissiontime) ?? 0,
            JSON.stringify(graph),
          );
      }
    });
    add.immediate();
  }

  async getProcess(processid: string): Promise<Process | undefined> {
    return docOf<Process>(this.db.prepare("SELECT doc FROM q_processes WHERE processid = ?").get(processid));
  }

  async getProcesses(processids: readonly string[]): Promise<Process[]> {
    const get = this.db.prepare("SELECT doc FROM q_processes WHERE processid = ?");
    return processids.flatMap((id) => {
      const process = docOf<Process>(get.get(id));
      return process ? [process] : [];
    });
  }

  async listProcesses(filter: {
    colonyname: string;
    state: ProcessState;
    count: number;
    executortype?: string;
    label?: string;
  }): Promise<Process[]> {
    const order =
      filter.state === WAITING
        ? "prioritytime, seq"
        : filter.state === RUNNING
          ? "starttime, seq"
          : "endtime DESC, seq DESC";
    return docsOf<Process>(
      this.db
        .prepare(
          `SELECT doc FROM q_processes WHERE colonyname = @colonyname AND state = @state
             AND (@executortype = '' OR executortype = @executortype) AND (@label = '' OR label = @label)
           ORDER BY ${order} LIMIT @count`,
        )
        .all({
          colonyname: filter.colonyname,
          state: filter.state,
          executortype: filter.executortype ?? "",
          label: filter.label ?? "",
          count: filter.count,
        }),
    );
  }

  async updateProcesses(processes: readonly Process[]): Promise<void> {
    this.db.transaction(() => this.writeProcesses(processes))();
  }

  /** Writes processes back, inside the caller's transaction. */
  private writeProcesses(processes: readonly Process[]): void {
    const update = this.db.prepare(
      `UPDATE q_processes SET state = @state, executortype = @executortype, executornames = @executornames,
         label = @label, isassigned = @isassigned, waitforparents = @waitforparents, prioritytime = @prioritytime,
         starttime = @starttime, endtime = @endtime, waitdeadline = @waitdeadline, execdeadline = @execdeadline,
         graphid = @graphid, doc = @doc
       WHERE processid = @processid`,
    );
    for (const process of processes) update.run(rowOf(process));
  }

  async removeProcess(processid: string): Promise<boolean> {
    const remove = this.db.transaction(() => {
      for (const table of ["q_logs", "q_channels"]) {
        this.db.prepare(`DELETE FROM ${table} WHERE processid = ?`).run(processid);
      }
      return this.db.prepare("DELETE FROM q_processes WHERE processid = ?").run(processid).changes > 0;
    });
    return remove.immediate();
  }

  async removeProcesses(filter: { colonyname: string; state?: ProcessState }): Promise<number> {
    const remove = this.db.transaction(() => {
      const n = this.db
        .prepare(
          `DELETE FROM q_processes WHERE colonyname = ? AND graphid = '' ${filter.state === undefined ? "" : "AND state = ?"}`,
        )
        .run(filter.colonyname, ...(filter.state === undefined ? [] : [filter.state])).changes;
      this.removeOrphans();
      return n;
    });
    return remove.immediate();
  }

  async removeGraphs(
    filter: { processgraphid: string } | { colonyname: string; state?: ProcessState },
  ): Promise<number> {
    const [where, params] =
      "processgraphid" in filter
        ? ["processgraphid = ?", [filter.processgraphid]]
        : filter.state === undefined
          ? ["colonyname = ?", [filter.colonyname]]
          : ["colonyname = ? AND state = ?", [filter.colonyname, filter.state]];
    const remove = this.db.transaction(() => {
      this.db
        .prepare(
          `DELETE FROM q_processes WHERE graphid IN (SELECT processgraphid FROM q_graphs WHERE ${where})`,
        )
        .run(...params);
      const n = this.db.prepare(`DELETE FROM q_graphs WHERE ${where}`).run(...params).changes;
      this.removeOrphans();
      return n;
    });
    return remove.immediate();
  }

  /** Logs and channel entries of processes no longer stored (inside the caller's transaction). */
  private removeOrphans(): void {
    for (const table of ["q_logs", "q_channels"]) {
      this.db
        .prepare(`DELETE FROM ${table} WHERE processid NOT IN (SELECT processid FROM q_processes)`)
        .run();
    }
  }

  async appendChannel(
    processid: string,
    colonyname: string,
    name: string,
    entry: ChannelEntry,
  ): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO q_channels (processid, colonyname, name, senderid, sequence, doc) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (processid, name, senderid, sequence) DO NOTHING`,
      )
      .run(processid, colonyname, name, entry.senderid, entry.sequence, JSON.stringify(entry));
  }

  async readChannel(processid: string, name: string, after: number, limit: number): Promise<ChannelEntry[]> {
    return docsOf<ChannelEntry>(
      this.db
        .prepare("SELECT doc FROM q_channels WHERE processid = ? AND name = ? ORDER BY seq LIMIT ? OFFSET ?")
        .all(processid, name, limit > 0 ? limit : -1, Math.max(0, after)),
    );
  }

  async assign(request: AssignRequest, start: (process: Process) => Process): Promise<Process | undefined> {
    const pick = this.db.prepare(
      `SELECT doc FROM q_processes
       WHERE colonyname = @colonyname AND state = 0 AND isassigned = 0 AND waitforparents = 0
         AND executortype = @executortype
         AND (executornames = '[]' OR EXISTS (SELECT 1 FROM json_each(executornames) WHERE value = @executorname))
       ORDER BY prioritytime, seq LIMIT 1`,
    );
    const take = this.db.transaction(() => {
      const process = docOf<Process>(pick.get(request));
      if (!process) return undefined;
      const started = start(process);
      this.writeProcesses([started]);
      return started;
    });
    return take.immediate();
  }

  async release(
    assigned: { processid: string; executorid: string; starttime: string },
    back: (process: Process) => Process,
  ): Promise<Process | undefined> {
    const give = this.db.transaction(() => {
      const process = docOf<Process>(
        this.db
          .prepare("SELECT doc FROM q_processes WHERE processid = ? AND state = 1")
          .get(assigned.processid),
      );
      if (!process || !stillAssigned(process, assigned)) return undefined;
      const returned = back(process);
      this.writeProcesses([returned]);
      return returned;
    });
    return give.immediate();
  }

  async pastDeadlines(nowMs: number): Promise<{ running: Process[]; waiting: Process[] }> {
    return {
      running: docsOf<Process>(
        this.db
          .prepare(
            "SELECT doc FROM q_processes WHERE state = 1 AND execdeadline IS NOT NULL AND execdeadline < ?",
          )
          .all(nowMs),
      ),
      waiting: docsOf<Process>(
        this.db
          .prepare(
            "SELECT doc FROM q_processes WHERE state = 0 AND waitdeadline IS NOT NULL AND waitdeadline < ?",
          )
          .all(nowMs),
      ),
    };
  }

  async countByState(colonyname: string): Promise<{ processes: number[]; graphs: number[] }> {
    const counts = (table: string) => {
      const out = [0, 0, 0, 0];
      const rows = this.db
        .prepare(`SELECT state, COUNT(*) AS n FROM ${table} WHERE colonyname = ? GROUP BY state`)
        .all(colonyname) as Array<{ state: number; n: number }>;
      for (const row of rows) out[row.state] = row.n;
      return out;
    };
    return { processes: counts("q_processes"), graphs: counts("q_graphs") };
  }

  async getGraph(processgraphid: string): Promise<ProcessGraph | undefined> {
    return docOf<ProcessGraph>(
      this.db.prepare("SELECT doc FROM q_graphs WHERE processgraphid = ?").get(processgraphid),
    );
  }

  async updateGraph(graph: ProcessGraph): Promise<void> {
    this.db
      .prepare("UPDATE q_graphs SET state = ?, doc = ? WHERE processgraphid = ?")
      .run(graph.state, JSON.stringify(graph), graph.processgraphid);
  }

  async listGraphs(filter: {
    colonyname: string;
    state: ProcessState;
    count: number;
  }): Promise<ProcessGraph[]> {
    return docsOf<ProcessGraph>(
      this.db
        .prepare(
          "SELECT doc FROM q_graphs WHERE colonyname = ? AND state = ? ORDER BY submitted DESC LIMIT ?",
        )
        .all(filter.colonyname, filter.state, filter.count),
    );
  }

  async putObject(kind: ObjectKind, id: string, colonyname: string, doc: object): Promise<boolean> {
    // the WHERE of the upsert: an object of another colony or executor is never replaced
    const put = this.db
      .prepare(
        `INSERT INTO q_objects (kind, id, colonyname, doc) VALUES (?, ?, ?, ?)
         ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc
         WHERE q_objects.colonyname = excluded.colonyname
           AND json_extract(q_objects.doc, '$.executorname') IS json_extract(excluded.doc, '$.executorname')`,
      )
      .run(kind, id, colonyname, JSON.stringify(doc));
    return put.changes > 0;
  }

  async getObject<T>(kind: ObjectKind, id: string): Promise<T | undefined> {
    return docOf<T>(this.db.prepare("SELECT doc FROM q_objects WHERE kind = ? AND id = ?").get(kind, id));
  }

  async listObjects<T>(kind: ObjectKind, colonyname: string): Promise<T[]> {
    return docsOf<T>(
      this.db
        .prepare("SELECT doc FROM q_objects WHERE kind = ? AND colonyname = ? ORDER BY seq")
        .all(kind, colonyname),
    );
  }

  async deleteObject(kind: ObjectKind, id: string): Promise<boolean> {
    return this.db.prepare("DELETE FROM q_objects WHERE kind = ? AND id = ?").run(kind, id).changes > 0;
  }

  async addLog(entry: LogEntry): Promise<void> {
    this.db
      .prepare("INSERT INTO q_logs (processid, timestamp, doc) VALUES (?, ?, ?)")
      .run(entry.processid, entry.timestamp, JSON.stringify(entry));
  }

  async getLogs(filter: { processid: string; count: number; since: number }): Promise<LogEntry[]> {
    return docsOf<LogEntry>(
      this.db
        .prepare(
          "SELECT doc FROM q_logs WHERE processid = ? AND timestamp > ? ORDER BY timestamp, seq LIMIT ?",
        )
        .all(filter.processid, filter.since, filter.count),
    );
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

function rowOf(process: Process) {
  return {
    processid: process.processid,
    colonyname: process.spec.conditions.colonyname,
    state: process.state,
    executortype: process.spec.conditions.executortype,
    executornames: JSON.stringify(process.spec.conditions.executornames),
    label: process.spec.label,
    isassigned: process.isassigned ? 1 : 0,
    waitforparents: process.waitforparents ? 1 : 0,
    prioritytime: process.prioritytime,
    starttime: timeMs(process.starttime) ?? null,
    endtime: timeMs(process.endtime) ?? null,
    waitdeadline: timeMs(process.waitdeadline) ?? null,
    execdeadline: timeMs(process.execdeadline) ?? null,
    graphid: process.processgraphid,
    doc: JSON.stringify(process),
  };
}

function docOf<T>(row: unknown): T | undefined {
  return row ? (JSON.parse((row as { doc: string }).doc) as T) : undefined;
}

function docsOf<T>(rows: unknown[]): T[] {
  return rows.map((row) => JSON.parse((row as { doc: string }).doc) as T);
}

function conflictOr(err: unknown, kind: string, id: string): unknown {
  return (err as { code?: string }).code?.startsWith("SQLITE_CONSTRAINT") ? new ConflictError(kind, id) : err;
}
