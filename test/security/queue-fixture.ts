import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect as connectTcp } from "node:net";
import pg from "pg";
import { request } from "undici";
import type { Identity } from "../../src/index.js";
import { Colonies, newIdentity } from "../../src/index.js";
import { requestEnvelope } from "../../src/queue/envelope.js";
import { killAndWait } from "../helpers/client-process.js";
import { hasPostgres, postgresUrl } from "../helpers/postgres.js";
import type { Service } from "../helpers/service.js";
import { serve, serviceDb } from "../helpers/service.js";

/**
 * A real `afs serve` with the queue on, on SQLite or PostgreSQL, for the queue's attack
 * tests. On PostgreSQL each service gets a schema of its own (search_path), so the store
 * conformance suite truncating the shared tables never meets it.
 */
export interface QueueTarget {
  name: "sqlite" | "postgres";
  /** A fresh database for one service, and how to drop it. */
  database(): Promise<{ db: string; drop: () => Promise<void> }>;
}

const sqlite: QueueTarget = {
  name: "sqlite",
  database: async () => ({ db: serviceDb(), drop: async () => undefined }),
};

const postgres: QueueTarget = {
  name: "postgres",
  database: async () => {
    const schema = `qsec_${randomBytes(6).toString("hex")}`;
    await sql(`CREATE SCHEMA ${schema}`);
    const separator = postgresUrl.includes("?") ? "&" : "?";
    return {
      db: `${postgresUrl}${separator}options=${encodeURIComponent(`-c search_path=${schema}`)}`,
      drop: () => sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`),
    };
  },
};

/** SQLite always; PostgreSQL when the test database answers. */
export const queueTargets: QueueTarget[] = hasPostgres ? [sqlite, postgres] : [sqlite];

async function sql(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/** What `POST /api` answered, decoded. */
export interface RawAnswer {
  status: number;
  /** The reply envelope as sent. */
  envelope: { payloadtype?: string; payload?: string; error?: boolean } | undefined;
  /** The envelope's payload, decoded (the result, or `{status, message}` for an error). */
  payload: unknown;
  text: string;
}

/** A colony with its owner, and how to add approved executors to it. */
export interface TestColony {
  name: string;
  owner: Identity;
  executor(name: string, type?: string): Promise<Identity>;
}

export class QueueService {
  readonly server = newIdentity();
  colonies!: Colonies;
  private service!: Service;
  private drop: () => Promise<void> = async () => undefined;

  private constructor(readonly target: QueueTarget) {}

  /** Starts `afs serve --colonies-server-id ...` (plus `args`) on a fresh database. */
  static async start(
    target: QueueTarget,
    args: string[] = [],
    options: { bearer?: string } = {},
  ): Promise<QueueService> {
    const queue = new QueueService(target);
    const { db, drop } = await target.database();
    queue.drop = drop;
    queue.service = await serve("--db", db, "--colonies-server-id", queue.server.id, ...args);
    queue.colonies = new Colonies(queue.url, options.bearer ? { bearer: options.bearer } : {});
    return queue;
  }

  get url(): string {
    return this.service.url;
  }

  get pid(): number {
    return this.service.child.pid as number;
  }

  /** The service process's resident memory, in bytes (Linux). */
  rssBytes(): number {
    const status = readFileSync(`/proc/${this.pid}/status`, "utf8");
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    return Number(kb) * 1024;
  }

  /** A new colony `name` with a fresh owner. */
  async colony(name: string): Promise<TestColony> {
    const owner = newIdentity();
    await this.colonies.addColony({ colonyid: owner.id, name }, this.server.privateKey);
    return {
      name,
      owner,
      executor: async (executorname, type = "work") => {
        const identity = newIdentity();
        await this.colonies.addExecutor(
          { executorid: identity.id, executortype: type, executorname, colonyname: name },
          owner.privateKey,
        );
        await this.colonies.approveExecutor(name, executorname, owner.privateKey);
        return identity;
      },
    };
  }

  /** Signs `message` with `privateKey` and posts it to `/api` as any client could. */
  call(
    message: Record<string, unknown> & { msgtype: string },
    privateKey: string,
    headers: Record<string, string> = {},
  ): Promise<RawAnswer> {
    return this.post(JSON.stringify(requestEnvelope(message, privateKey)), headers);
  }

  /** Posts a body as it is to `/api`. */
  async post(body: string | Buffer, headers: Record<string, string> = {}): Promise<RawAnswer> {
    const res = await request(`${this.url}/api`, { method: "POST", body, headers });
    return decode(res.statusCode, await res.body.text());
  }

  /**
   * Posts `bytes` of body over a raw socket, as an attacker would: announced by
   * Content-Length, or streamed in chunks without a length. Stops sending once the server
   * answers (it may refuse before reading the rest), and returns its answer.
   */
  postOversized(bytes: number, how: "announced" | "streamed"): Promise<RawAnswer> {
    const { hostname, port } = new URL(this.url);
    return new Promise((resolve, reject) => {
      const socket = connectTcp(Number(port), hostname);
      const received: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => received.push(chunk));
      socket.on("error", () => undefined); // EPIPE/ECONNRESET once the server stops reading
      socket.on("close", () => {
        const text = Buffer.concat(received).toString("utf8");
        const status = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1];
        if (!status) reject(new Error(`no HTTP answer: ${text.slice(0, 200)}`));
        else resolve(decode(Number(status), text.slice(text.indexOf("\r\n\r\n") + 4)));
      });
      const length = how === "announced" ? `Content-Length: ${bytes}` : "Transfer-Encoding: chunked";
      socket.write(
        `POST /api HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n${length}\r\n` +
          "Connection: close\r\n\r\n",
      );
      if (how === "announced") return; // the length alone must be refused
      void (async () => {
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        for (let sent = 0; sent < bytes && received.length === 0 && !socket.destroyed; sent += chunk.length) {
          if (!socket.write(`${chunk.length.toString(16)}\r\n${chunk.toString()}\r\n`))
            await new Promise((r) => socket.once("drain", r));
          await new Promise((r) => setImmediate(r));
        }
      })();
    });
  }

  /** How long `GET /health` takes to answer, in ms. */
  async healthMs(): Promise<number> {
    const started = performance.now();
    const res = await request(`${this.url}/health`);
    await res.body.text();
    if (res.statusCode !== 200) throw new Error(`/health answered ${res.statusCode}`);
    return performance.now() - started;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.colonies?.disconnect();
    if (this.service) await killAndWait(this.service.child, "SIGTERM");
    await this.drop();
  }
}

function decode(status: number, text: string): RawAnswer {
  let envelope: RawAnswer["envelope"];
  let payload: unknown;
  try {
    envelope = JSON.parse(text) as RawAnswer["envelope"];
    payload = JSON.parse(Buffer.from(envelope?.payload ?? "", "base64").toString("utf8"));
  } catch {
    // not an envelope: the assertions say so
  }
  return { status, envelope, payload, text };
}

/** An error answer is the protocol's error envelope, with the HTTP status inside. */
export function isErrorEnvelope(answer: RawAnswer): boolean {
  const failure = answer.payload as { status?: unknown; message?: unknown } | undefined;
  return (
    answer.envelope?.error === true &&
    answer.envelope.payloadtype === "error" &&
    failure?.status === answer.status &&
    typeof failure.message === "string"
  );
}
