import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import type { Database, TopicHandler, Transaction } from "./database.js";
import { postgresDialect } from "./postgres-dialect.js";
import { PostgresListener } from "./postgres-listener.js";

/** Connections of one service process (all its faces together). */
const POOL_SIZE = 10;

const INT8 = 20;
const JSON_OID = 114;
const JSONB_OID = 3802;

/**
 * Values as SQLite gives them, so one store reads both engines alike: BIGINT as a
 * number (times in ms and counts, all below 2^53), JSON as its text.
 */
const TYPES = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    if (oid === INT8) return Number;
    if (oid === JSON_OID || oid === JSONB_OID) return (text: string) => text;
    return pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

type Client = Pick<pg.PoolClient, "query">;

/**
 * The database of several service replicas: PostgreSQL, through one pool per process.
 * Topics are LISTEN/NOTIFY channels, named after the schema too, so deployments in
 * different schemas of one database never hear each other.
 */
export class PostgresDatabase implements Database {
  readonly dialect = postgresDialect;
  /** Tells this process's notifications from the others' (it hears its own too). */
  private readonly origin = randomBytes(8).toString("hex");
  private readonly handlers = new Map<string, Set<TopicHandler>>();
  private readonly listener: PostgresListener;
  private closed: Promise<void> | undefined;

  private constructor(
    private readonly pool: pg.Pool,
    url: string,
    private readonly namespace: string,
  ) {
    this.listener = new PostgresListener(
      url,
      (channel, payload) => this.heard(channel, payload),
      () => this.gap(),
    );
  }

  /** Connects (`postgres://user:pass@host:port/db`, `?options=-c search_path=...` picks a schema). */
  static async connect(url: string): Promise<PostgresDatabase> {
    const pool = new pg.Pool({ connectionString: url, max: POOL_SIZE, types: TYPES });
    // an idle connection the server ended: the pool replaces it; without a listener it would crash the process
    pool.on("error", () => undefined);
    try {
      const [row] = (await pool.query<{ schema: string | null }>("SELECT current_schema() AS schema")).rows;
      const namespace = createHash("sha256")
        .update(row?.schema ?? "")
        .digest("hex")
        .slice(0, 16);
      return new PostgresDatabase(pool, url, namespace);
    } catch (err) {
      await pool.end();
      throw err;
    }
  }

  query<R extends object>(sql: string, params?: readonly unknown[]): Promise<R[]> {
    return rowsOf<R>(this.pool, sql, params);
  }

  run(sql: string, params?: readonly unknown[]): Promise<number> {
    return changesOf(this.pool, sql, params);
  }

  async exec(script: string): Promise<void> {
    await this.pool.query(script);
  }

  async transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const result = await work(transactionOn(client));
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

  publish(topic: string, message: string): void {
    // a NOTIFY needs a transaction of its own, whose commit need not wait for a WAL flush (nothing to keep)
    this.pool
      .query("SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)", [
        this.channel(topic),
        `${this.origin} ${message}`,
      ])
      .catch(() => undefined); // best effort: subscribers also wait with a timeout
  }

  async subscribe(topic: string, handler: TopicHandler): Promise<() => void> {
    const set = this.handlers.get(topic) ?? new Set();
    this.handlers.set(topic, set.add(handler));
    const unsubscribe = () => {
      set.delete(handler);
      if (set.size > 0) return;
      this.handlers.delete(topic);
      this.listener.unlisten(this.channel(topic));
    };
    await this.listener.listen(this.channel(topic)).catch((err: unknown) => {
      unsubscribe();
      throw err;
    });
    return unsubscribe;
  }

  /** Idempotent. */
  async close(): Promise<void> {
    this.closed ??= Promise.all([this.listener.close(), this.pool.end()]).then(() => undefined);
    await this.closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private channel(topic: string): string {
    return `affinetes_${this.namespace}_${topic}`;
  }

  private heard(channel: string, payload: string): void {
    const space = payload.indexOf(" ");
    if (payload.slice(0, space) === this.origin) return;
    const topic = channel.slice(`affinetes_${this.namespace}_`.length);
    for (const handler of this.handlers.get(topic) ?? []) handler(payload.slice(space + 1));
  }

  /** The listening connection was down: whatever was published meanwhile is lost. */
  private gap(): void {
    for (const set of this.handlers.values()) for (const handler of set) handler(undefined);
  }
}

function transactionOn(client: Client): Transaction {
  return {
    dialect: postgresDialect,
    query: (sql, params) => rowsOf(client, sql, params),
    run: (sql, params) => changesOf(client, sql, params),
    exec: async (script) => void (await client.query(script)),
    exclusive: async (key) => void (await client.query("SELECT pg_advisory_xact_lock($1)", [key])),
  };
}

async function rowsOf<R extends object>(
  client: Client,
  sql: string,
  params: readonly unknown[] | undefined,
): Promise<R[]> {
  return (await client.query<R>(sql, params as unknown[] | undefined)).rows;
}

async function changesOf(
  client: Client,
  sql: string,
  params: readonly unknown[] | undefined,
): Promise<number> {
  return (await client.query(sql, params as unknown[] | undefined)).rowCount ?? 0;
}
