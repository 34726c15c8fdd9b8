import { Pool } from "undici";
import { timeoutSignal } from "../util/deadline.js";
import { authHeaders } from "./auth-token.js";

/** A decoded HTTP answer: the status and the body parsed as JSON when it is JSON. */
export interface HttpAnswer {
  status: number;
  /** The parsed JSON body, or `undefined` when the body was empty or not JSON. */
  json: unknown;
  text: string;
}

export interface HttpRequestOptions {
  method: "GET" | "POST";
  path: string;
  body?: unknown;
  signal?: AbortSignal | undefined;
  /**
   * Bound on waiting for the answer once the request is sent. Enforced by undici's own
   * timers: no per-request timer or signal to allocate on the hot path.
   */
  timeoutMs?: number | undefined;
}

/**
 * Keep-alive HTTP/1.1 connections to one instance's server (undici `Pool`), so a call
 * costs one request on an open socket, not a TCP handshake.
 */
export class HttpClient {
  private readonly pool: Pool;
  private readonly connections: number;
  /** Built once: every request carries the token, without a new object per call. */
  private readonly headers: Readonly<Record<string, string>>;
  private readonly jsonHeaders: Readonly<Record<string, string>>;
  private inFlight = 0;
  private closed = false;

  /** `authToken`: sent on every request as `Authorization: Bearer <token>`. */
  constructor(
    readonly origin: string,
    options: { connections?: number; connectTimeoutMs?: number; authToken?: string | undefined } = {},
  ) {
    this.headers = authHeaders(options.authToken);
    this.jsonHeaders = { ...this.headers, "content-type": "application/json" };
    this.connections = options.connections ?? 128;
    this.pool = new Pool(origin, {
      connections: this.connections,
      keepAliveTimeout: 30_000,
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      // Call duration is bounded by the caller's signal, not by undici's fixed timers.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  /** `body`: a value sent as JSON, or a string already holding JSON. */
  async request(options: HttpRequestOptions): Promise<HttpAnswer> {
    const body =
      options.body === undefined || typeof options.body === "string"
        ? options.body
        : JSON.stringify(options.body);
    // undici's timers start once a request has a socket; a request that must queue for
    // one gets a timer of its own, so the bound also covers the wait.
    const queued = this.inFlight >= this.connections && options.timeoutMs !== undefined;
    const queueTimer = queued ? timeoutSignal(options.timeoutMs as number) : undefined;
    const signal =
      queueTimer && options.signal
        ? AbortSignal.any([options.signal, queueTimer])
        : (queueTimer ?? options.signal);
    this.inFlight++;
    try {
      return await this.send(options, body, signal);
    } catch (err) {
      if (queueTimer?.aborted && !options.signal?.aborted) {
        throw Object.assign(new Error(`no answer within ${options.timeoutMs} ms`), {
          code: "UND_ERR_HEADERS_TIMEOUT",
        });
      }
      throw err;
    } finally {
      this.inFlight--;
    }
  }

  private async send(
    options: HttpRequestOptions,
    body: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<HttpAnswer> {
    const response = await this.pool.request({
      method: options.method,
      path: options.path,
      body,
      headers: body === undefined ? this.headers : this.jsonHeaders,
      signal,
      ...(options.timeoutMs !== undefined
        ? { headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs }
        : {}),
    });
    const text = await response.body.text();
    return { status: response.statusCode, json: parseJson(text), text };
  }

  /** Closes the connections; requests in flight fail. Safe to call more than once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.destroy();
  }
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
