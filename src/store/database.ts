import type { Dialect } from "./dialect.js";

/**
 * Runs SQL on the service's database. Statements are written once, in PostgreSQL's
 * placeholder style (`$1`, `$2`, ...; a number may repeat), with the engine-specific
 * fragments taken from `dialect`. Values come back as JavaScript numbers, strings and
 * null on both engines: JSON columns as their text, BIGINT as a number.
 */
export interface Queryable {
  readonly dialect: Dialect;
  /** The rows a statement returns. */
  query<R extends object>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** Runs a statement; how many rows it changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(script: string): Promise<void>;
}

/** Statements inside one transaction. */
export interface Transaction extends Queryable {
  /**
   * Serializes this transaction with every other one that takes the same `key`, in every
   * process sharing the database, until it ends (PostgreSQL: an advisory lock; SQLite's
   * one writer already excludes every other write transaction).
   */
  exclusive(key: number): Promise<void>;
}

/** Hears what other processes sharing the database publish on a topic. */
export type TopicHandler = (message: string | undefined) => void;

/**
 * One handle on the service's database (SQLite file or PostgreSQL), opened once per
 * service process and shared by the stores of every face.
 */
export interface Database extends Queryable, AsyncDisposable {
  /**
   * Runs `work` in one transaction: committed when it resolves, rolled back when it throws.
   * A write transaction from its start (SQLite: BEGIN IMMEDIATE), so a read inside it
   * sees what no other writer can change before the commit. Inside `work`, use `tx`
   * only: the handle itself waits for the transaction to end.
   */
  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T>;
  /**
   * Tells the other processes sharing the database (not this one): their subscribers of
   * `topic` get `message`. Best effort and not awaited: a message may be lost when a
   * connection drops, which is why a subscriber also hears `undefined` then.
   */
  publish(topic: string, message: string): void;
  /**
   * Calls `handler` with each message another process publishes on `topic`, and with
   * `undefined` when messages may have been missed or another process changed the
   * database in a way no message names (look again at whatever you wait for). Resolves,
   * once listening, to the unsubscribe function.
   */
  subscribe(topic: string, handler: TopicHandler): Promise<() => void>;
  /** Closes the handle (idempotent). */
  close(): Promise<void>;
}
