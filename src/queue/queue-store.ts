import { RUNNING } from "./model.js";
import type {
  ChannelEntry,
  Colony,
  Executor,
  LogEntry,
  Process,
  ProcessGraph,
  ProcessState,
  User,
} from "./model.js";

/** The kinds of keyed objects (`putObject`). */
export type ObjectKind = "user" | "attribute" | "function";

/** What an executor asking for work offers. */
export interface AssignRequest {
  colonyname: string;
  executorid: string;
  executorname: string;
  executortype: string;
}

/**
 * The process queue's store extension point (SQLite embedded; PostgreSQL for several
 * service replicas), with the long-poll wait for work of every service process sharing
 * it. Objects are stored as the protocol's JSON documents, with the fields the queue
 * selects on kept as columns.
 */
export interface QueueStore {
  addColony(colony: Colony): Promise<void>;
  getColony(name: string): Promise<Colony | undefined>;
  listColonies(): Promise<Colony[]>;
  /** Removes the colony and everything in it. */
  removeColony(name: string): Promise<boolean>;

  /**
   * Who `id` is to a colony, read at once (every signed call asks): the colony, and the
   * user and the executor of that id, whatever their colony.
   */
  membership(
    colonyname: string,
    id: string,
  ): Promise<{ colony: Colony | undefined; user: User | undefined; executor: Executor | undefined }>;

  addExecutor(executor: Executor): Promise<void>;
  getExecutor(colonyname: string, executorname: string): Promise<Executor | undefined>;
  getExecutorById(executorid: string): Promise<Executor | undefined>;
  listExecutors(colonyname: string): Promise<Executor[]>;
  updateExecutor(executor: Executor): Promise<void>;
  removeExecutor(colonyname: string, executorname: string): Promise<boolean>;

  /** Inserts processes (and the graph they form, when given) all at once. */
  addProcesses(processes: readonly Process[], graph?: ProcessGraph): Promise<void>;
  getProcess(processid: string): Promise<Process | undefined>;
  /** Several processes by id, in the order asked. */
  getProcesses(processids: readonly string[]): Promise<Process[]>;
  /** WAITING by priority time; RUNNING by start time; finished ones newest first. */
  listProcesses(filter: {
    colonyname: string;
    state: ProcessState;
    count: number;
    executortype?: string;
    label?: string;
  }): Promise<Process[]>;
  /** Replaces stored processes with these versions (all at once). */
  updateProcesses(processes: readonly Process[]): Promise<void>;
  /** Removes a process with its logs and channels. */
  removeProcess(processid: string): Promise<boolean>;
  /** Removes a colony's processes that belong to no workflow (of one state, when given); how many. */
  removeProcesses(filter: { colonyname: string; state?: ProcessState }): Promise<number>;
  /** Removes process graphs with their processes: one by id, or a colony's (of one state, when given). */
  removeGraphs(
    filter: { processgraphid: string } | { colonyname: string; state?: ProcessState },
  ): Promise<number>;
  /**
   * Atomically takes the first assignable process for this executor (WAITING, not
   * waiting for parents, of its colony and type, naming it or no executor), in priority
   * order, and marks it RUNNING and assigned through `start`. Two executors never get
   * the same process, also from several service processes.
   */
  assign(request: AssignRequest, start: (process: Process) => Process): Promise<Process | undefined>;
  /**
   * Atomically gives back a process whose executor never got it (its client left before
   * the answer): only while it is still RUNNING on `executorid` since `starttime`, it is
   * replaced by `back(stored)`. The given-back process, or undefined when it had moved on.
   */
  release(
    assigned: { processid: string; executorid: string; starttime: string },
    back: (process: Process) => Process,
  ): Promise<Process | undefined>;
  /** RUNNING processes past their execution deadline, and WAITING ones past their waiting deadline. */
  pastDeadlines(nowMs: number): Promise<{ running: Process[]; waiting: Process[] }>;

  /** How many processes and process graphs of the colony are in each state (index = state). */
  countByState(colonyname: string): Promise<{ processes: number[]; graphs: number[] }>;

  getGraph(processgraphid: string): Promise<ProcessGraph | undefined>;
  updateGraph(graph: ProcessGraph): Promise<void>;
  listGraphs(filter: { colonyname: string; state: ProcessState; count: number }): Promise<ProcessGraph[]>;

  /**
   * Keyed objects of a colony that need no queries of their own (users, attributes,
   * registered functions), as documents. `put` adds one, or replaces the one of the same
   * kind and id when it belongs to the same colony and (functions) the same
   * `executorname`; when another colony's or executor's object holds the id it changes
   * nothing and answers false (atomically: no check-then-write window).
   */
  putObject(kind: ObjectKind, id: string, colonyname: string, doc: object): Promise<boolean>;
  getObject<T>(kind: ObjectKind, id: string): Promise<T | undefined>;
  /** A colony's objects of a kind, in the order they were first put. */
  listObjects<T>(kind: ObjectKind, colonyname: string): Promise<T[]>;
  deleteObject(kind: ObjectKind, id: string): Promise<boolean>;

  addLog(entry: LogEntry): Promise<void>;
  getLogs(filter: { processid: string; count: number; since: number }): Promise<LogEntry[]>;

  /**
   * Appends to a process's channel; an entry of the same sender and sequence already
   * there is kept instead (a retried append is not doubled).
   */
  appendChannel(processid: string, colonyname: string, name: string, entry: ChannelEntry): Promise<void>;
  /** A channel's entries from position `after` (0: all), at most `limit` (0: no limit), in arrival order. */
  readChannel(processid: string, name: string, after: number, limit: number): Promise<ChannelEntry[]>;

  /**
   * How many wake-ups executors of the colony and type have had: read it before looking
   * at the queue and give it to `waitForWork`, so a wake-up in between is not lost.
   */
  workSeen(colonyname: string, executortype: string): number;
  /**
   * Waits for new work for the colony and type, announced by `notifyWork` in this or any
   * other service process sharing the store: true when woken (at once when a wake-up came
   * since `seen`), false after `timeoutMs`, when `signal` aborts or the store closes.
   */
  waitForWork(
    colonyname: string,
    executortype: string,
    options: { timeoutMs: number; seen: number; signal?: AbortSignal | undefined },
  ): Promise<boolean>;
  /**
   * Announces new work (after it is stored): wakes up to `count` waiting executors of the
   * colony and type (Infinity: all), of this process first, then of the others.
   */
  notifyWork(colonyname: string, executortype: string, count: number): void;

  /** Ends every wait and closes the store. */
  close(): Promise<void>;
}

/** Whether a stored process is still the assignment `release` means to undo. */
export function stillAssigned(
  process: Process,
  assigned: { executorid: string; starttime: string },
): boolean {
  return (
    process.state === RUNNING &&
    process.assignedexecutorid === assigned.executorid &&
    process.starttime === assigned.starttime
  );
}
