import { resolve } from "node:path";
import type { Database, TopicHandler, Transaction } from "./database.js";
import { SqliteConnection } from "./sqlite-connection.js";
import { sqliteDialect } from "./sqlite-dialect.js";

/**
 * The connection to each SQLite file this process has open, with how many handles use
 * it. One per file and process, never two: a transaction suspended at an `await` on one
 * connection would hold the file's write lock while a second connection's BEGIN
 * IMMEDIATE blocked the thread waiting for it, forever (the first can never resume).
 */
const open = new Map<string, { connection: SqliteConnection; handles: number }>();

/**
 * The embedded database: a handle on a SQLite file, sharing the process's one connection
 * to that file with the other handles on it (`:memory:`: a database of its own).
 */
export class SqliteDatabase implements Database {
  readonly dialect = sqliteDialect;
  private readonly connection: SqliteConnection;
  private readonly key: string | undefined;
  private closed = false;

  constructor(file: string) {
    this.key = file === ":memory:" ? undefined : resolve(file);
    const shared = this.key === undefined ? undefined : open.get(this.key);
    if (shared) shared.handles++;
    this.connection = shared?.connection ?? new SqliteConnection(file);
    if (!shared && this.key !== undefined) open.set(this.key, { connection: this.connection, handles: 1 });
  }

  query<R extends object>(sql: string, params?: readonly unknown[]): Promise<R[]> {
    return this.connection.query<R>(sql, params);
  }

  run(sql: string, params?: readonly unknown[]): Promise<number> {
    return this.connection.run(sql, params);
  }

  exec(script: string): Promise<void> {
    return this.connection.exec(script);
  }

  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.connection.transaction(work);
  }

  publish(topic: string, message: string): void {
    this.connection.publish(this, topic, message);
  }

  async subscribe(topic: string, handler: TopicHandler): Promise<() => void> {
    return this.connection.subscribe(this, topic, handler);
  }

  /** Idempotent; the connection closes with its last handle. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const shared = this.key === undefined ? undefined : open.get(this.key);
    if (shared && --shared.handles > 0) return;
    if (this.key !== undefined) open.delete(this.key);
    this.connection.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
