import BetterSqlite from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Queryable, TopicHandler, Transaction } from "./database.js";
import { sqliteDialect } from "./sqlite-dialect.js";
import { SqliteChangeWatcher } from "./sqlite-change-watcher.js";

interface Prepared {
  statement: BetterSqlite.Statement;
  /** For each `?` of the statement, the index of the parameter it takes (`$n` may repeat). */
  order: number[];
}

/** Distinct statements kept prepared; past it the cache starts over (dynamic SQL is bounded, but be safe). */
const MAX_PREPARED = 500;

/**
 * One connection to a SQLite file (WAL). better-sqlite3 runs each statement
 * synchronously, so a transaction is BEGIN IMMEDIATE ... COMMIT around the caller's
 * async work, and every other statement on this connection waits until it ends
 * (otherwise it would run inside it). Other processes may share the file: a writer waits
 * for another's transaction (busy timeout) instead of failing.
 */
export class SqliteConnection implements Queryable {
  readonly dialect = sqliteDialect;
  private readonly db: BetterSqlite.Database;
  private readonly prepared = new Map<string, Prepared>();
  /** Settles when the open transaction ends; undefined when none is open. */
  private transactionEnded: Promise<void> | undefined;
  private readonly watcher: SqliteChangeWatcher | undefined;
  /** Subscribers by topic, with the handle each subscribed through. */
  private readonly handlers = new Map<string, Map<TopicHandler, object>>();
  private readonly tx: Transaction;

  constructor(file: string) {
    if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
    this.db = new BetterSqlite(file);
    try {
      this.db.pragma("busy_timeout = 10000"); // other processes' writes wait, they do not fail
      this.db.pragma("journal_mode = WAL");
      // WAL with NORMAL: a commit survives the service being killed (not a power cut), without an fsync each
      this.db.pragma("synchronous = NORMAL");
    } catch (err) {
      this.db.close();
      throw err;
    }
    // an in-memory database has no other process to hear from
    this.watcher =
      file === ":memory:"
        ? undefined
        : new SqliteChangeWatcher(
            () => this.db.pragma("data_version", { simple: true }) as number,
            () => this.changedElsewhere(),
          );
    this.tx = {
      dialect: sqliteDialect,
      query: (sql, params) => settle(() => this.all(sql, params)),
      run: (sql, params) => settle(() => this.change(sql, params)),
      exec: (script) => settle(() => void this.db.exec(script)),
      exclusive: () => Promise.resolve(), // BEGIN IMMEDIATE already made this the only writer
    };
  }

  query<R extends object>(sql: string, params?: readonly unknown[]): Promise<R[]> {
    return this.outside(() => this.all<R>(sql, params));
  }

  run(sql: string, params?: readonly unknown[]): Promise<number> {
    return this.outside(() => this.change(sql, params));
  }

  exec(script: string): Promise<void> {
    return this.outside(() => void this.db.exec(script));
  }

  async transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    // checked and taken in one synchronous step after the wait: nothing slips in between
    while (this.transactionEnded) await this.transactionEnded;
    let end = () => {};
    this.transactionEnded = new Promise((resolve) => (end = resolve));
    try {
      this.statement("BEGIN IMMEDIATE").statement.run();
      try {
        const result = await work(this.tx);
        this.statement("COMMIT").statement.run();
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.statement("ROLLBACK").statement.run();
        throw err;
      }
    } finally {
      this.transactionEnded = undefined;
      end();
    }
  }

  /**
   * To the subscribers of the other handles on this connection only: other processes
   * notice this one's commit themselves (their change watcher).
   */
  publish(from: object, topic: string, message: string): void {
    for (const [handler, handle] of this.handlers.get(topic) ?? []) if (handle !== from) handler(message);
  }

  subscribe(from: object, topic: string, handler: TopicHandler): () => void {
    const subscribers = this.handlers.get(topic) ?? new Map<TopicHandler, object>();
    this.handlers.set(topic, subscribers.set(handler, from));
    this.watcher?.start();
    return () => {
      subscribers.delete(handler);
      if (subscribers.size === 0) this.handlers.delete(topic);
      if (this.handlers.size === 0) this.watcher?.stop();
    };
  }

  close(): void {
    this.watcher?.stop();
    this.handlers.clear();
    if (this.db.open) this.db.close();
  }

  /** Runs `call` when no transaction of this process is open (at once when none is). */
  private outside<T>(call: () => T): Promise<T> {
    if (!this.transactionEnded) return settle(call);
    return this.transactionEnded.then(() => this.outside(call));
  }

  /** Another process committed: every subscriber looks again. */
  private changedElsewhere(): void {
    for (const subscribers of this.handlers.values())
      for (const handler of subscribers.keys()) handler(undefined);
  }

  private all<R>(sql: string, params: readonly unknown[] | undefined): R[] {
    const { statement, order } = this.statement(sql);
    return statement.all(...bind(order, params)) as R[];
  }

  private change(sql: string, params: readonly unknown[] | undefined): number {
    const { statement, order } = this.statement(sql);
    return statement.run(...bind(order, params)).changes;
  }

  private statement(sql: string): Prepared {
    let prepared = this.prepared.get(sql);
    if (!prepared) {
      const order: number[] = [];
      const text = sql.replace(/\$(\d+)/g, (_, n: string) => {
        order.push(Number(n) - 1);
        return "?";
      });
      if (this.prepared.size >= MAX_PREPARED) this.prepared.clear();
      prepared = { statement: this.db.prepare(text), order };
      this.prepared.set(sql, prepared);
    }
    return prepared;
  }
}

/** The values of a statement's `?`s, as SQLite takes them (no booleans, no undefined). */
function bind(order: readonly number[], params: readonly unknown[] = []): unknown[] {
  return order.map((i) => {
    const value = params[i];
    return value === undefined ? null : typeof value === "boolean" ? Number(value) : value;
  });
}

/** A synchronous call as a promise: its throw becomes a rejection. */
function settle<T>(call: () => T): Promise<T> {
  try {
    return Promise.resolve(call());
  } catch (err) {
    return Promise.reject(err as Error);
  }
}
