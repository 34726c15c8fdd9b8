import { Pool } from "undici";
import type { Readable } from "node:stream";
import { APIError, BuildError, NotFoundError, ValidationError } from "../../errors.js";

/** How to reach a control plane (`afs serve`). */
export interface ClientOptions {
  /** The service's URL; default `AFFINETES_URL`, else `http://127.0.0.1:8008`. */
  url?: string;
  /** Its API key; default `AFFINETES_API_KEY` (none when unset). */
  apiKey?: string;
  /** Bound of one request (not of waits and log streams); default 60 000 ms. */
  timeoutMs?: number;
}

interface RequestOptions {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  query?: Record<string, string | undefined>;
  json?: unknown;
  body?: Uint8Array | string | Readable;
  /** Content type of `body` (default application/octet-stream). */
  contentType?: string;
  /** No timeout: waits and followed logs last as long as they last. */
  long?: boolean;
  signal?: AbortSignal;
}

/** The HTTP side of the SDK: one keep-alive connection pool, errors mapped to AffinetesErrors. */
export class ApiClient {
  readonly url: string;
  private readonly pool: Pool;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions = {}) {
    this.url = (options.url ?? process.env.AFFINETES_URL ?? "http://127.0.0.1:8008").replace(/\/+$/, "");
    if (!/^https?:\/\/[^/]+$/.test(this.url))
      throw new ValidationError("url", `expected http(s)://host[:port], got ${JSON.stringify(this.url)}`);
    this.apiKey = options.apiKey ?? process.env.AFFINETES_API_KEY;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.pool = new Pool(this.url, { connections: 16 });
  }

  /** A JSON request; the parsed answer (undefined for 204). */
  async json<T>(options: RequestOptions): Promise<T> {
    const res = await this.send(options);
    if (res.statusCode === 204) {
      await res.body.dump();
      return undefined as T;
    }
    return (await res.body.json()) as T;
  }

  /** A request whose answer is a byte or text stream. */
  async stream(options: RequestOptions): Promise<AsyncIterable<Buffer>> {
    const res = await this.send(options);
    return res.body;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  private async send(options: RequestOptions) {
    const query = new URLSearchParams(
      Object.entries(options.query ?? {}).filter((e): e is [string, string] => e[1] !== undefined),
    ).toString();
    const headers: Record<string, string> = {};
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    let body: RequestOptions["body"];
    if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.json);
    } else if (options.body !== undefined) {
      headers["content-type"] = options.contentType ?? "application/octet-stream";
      body = options.body;
    }
    const res = await this.pool.request({
      method: options.method,
      path: `${options.path}${query ? `?${query}` : ""}`,
      headers,
      ...(body !== undefined ? { body } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      headersTimeout: options.long ? 0 : this.timeoutMs,
      bodyTimeout: options.long ? 0 : this.timeoutMs,
    });
    if (res.statusCode < 400) return res;
    const text = await res.body.text();
    let code = "HTTP_ERROR";
    let message = text || `HTTP ${res.statusCode}`;
    try {
      const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
      code = parsed.error?.code ?? code;
      message = parsed.error?.message ?? message;
    } catch {
      // not JSON: the text is the message
    }
    if (res.statusCode === 404) throw new NotFoundError("resource", options.path, message);
    if (code === "BUILD_FAILED") throw new BuildError(message);
    throw new APIError(res.statusCode, code, message);
  }
}
