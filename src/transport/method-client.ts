import type { CallError } from "../errors.js";
import {
  CallAbortedError,
  CallTimeoutError,
  CallUnauthorizedError,
  ConnectionError,
  InvalidArgumentsError,
  MethodNotFoundError,
  RemoteError,
  ValidationError,
} from "../errors.js";
import type { EnvType } from "../runtime/instance.js";
import type { HttpAnswer } from "./http-client.js";
import type { HttpClient } from "./http-client.js";

/** A method the environment exposes, as `GET /methods` reports it. */
export interface MethodInfo {
  name: string;
  signature: string;
  source: "Actor" | "module" | "http";
  endpoint: string;
}

export interface CallOptions {
  /** Client-side bound for the call, in milliseconds. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Connection failures that prove the request never reached the server. */
const NOT_DELIVERED = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/**
 * Speaks the method-server protocol to one instance: `POST /call` for function-based
 * environments, `POST /<method>` for HTTP-based ones, and translates every failure into
 * a typed `CallError` in one place.
 */
export class MethodClient {
  private methodNames: readonly string[] | undefined;

  constructor(
    private readonly http: HttpClient,
    private readonly envType: EnvType,
  ) {}

  get origin(): string {
    return this.http.origin;
  }

  async call(
    method: string,
    args: readonly unknown[],
    kwargs: Record<string, unknown>,
    options: CallOptions = {},
  ): Promise<unknown> {
    const body = serialize(
      method,
      this.envType === "function_based" ? { method, args, kwargs } : directBody(args, kwargs),
    );
    const answer = await this.send(method, options, (limits) =>
      this.envType === "function_based"
        ? this.http.request({ method: "POST", path: "/call", body, ...limits })
        : this.http.request({
            method: "POST",
            path: `/${encodeURIComponent(method)}`,
            body,
            ...limits,
          }),
    );
    if (answer.status === 200) {
      return this.envType === "function_based"
        ? (answer.json as { result?: unknown } | undefined)?.result
        : (answer.json ?? answer.text);
    }
    throw await this.translate(method, answer);
  }

  /** The methods the environment exposes. HTTP-based environments are read from their OpenAPI document. */
  async listMethods(options: CallOptions = {}): Promise<MethodInfo[]> {
    if (this.envType === "http_based") return this.listHttpMethods(options);
    const answer = await this.send("listMethods", options, (limits) =>
      this.http.request({ method: "GET", path: "/methods", ...limits }),
    );
    if (answer.status !== 200) throw await this.translate("listMethods", answer);
    const methods = (answer.json as { methods?: MethodInfo[] } | undefined)?.methods ?? [];
    this.methodNames = methods.map((m) => m.name);
    return methods;
  }

  private async listHttpMethods(options: CallOptions): Promise<MethodInfo[]> {
    const answer = await this.send("listMethods", options, (limits) =>
      this.http.request({ method: "GET", path: "/openapi.json", ...limits }),
    );
    const paths =
      (answer.json as { paths?: Record<string, Record<string, unknown>> } | undefined)?.paths ?? {};
    const methods: MethodInfo[] = [];
    for (const [path, ops] of Object.entries(paths)) {
      for (const verb of Object.keys(ops)) {
        const name = path.replace(/^\//, "");
        if (verb === "post" && name && !name.includes("/")) {
          methods.push({ name, signature: "(**kwargs)", source: "http", endpoint: `POST ${path}` });
        }
      }
    }
    this.methodNames = methods.map((m) => m.name);
    return methods;
  }

  private async send(
    method: string,
    options: CallOptions,
    request: (limits: { signal?: AbortSignal; timeoutMs?: number }) => Promise<HttpAnswer>,
  ): Promise<HttpAnswer> {
    try {
      return await request({
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      });
    } catch (err) {
      if (options.signal?.aborted) throw new CallAbortedError(method, { cause: options.signal.reason });
      const code = errorCode(err);
      if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
        throw new CallTimeoutError(method, "client", options.timeoutMs);
      }
      throw new ConnectionError(method, this.http.origin, !NOT_DELIVERED.has(code ?? ""), { cause: err });
    }
  }

  /** The one table from HTTP answers to typed errors. */
  private async translate(method: string, answer: HttpAnswer): Promise<CallError> {
    const body = (answer.json ?? {}) as Record<string, unknown>;
    const detail = typeof body.detail === "string" ? body.detail : answer.text || `HTTP ${answer.status}`;
    const errorType = typeof body.error_type === "string" ? body.error_type : undefined;
    if (answer.status === 404) {
      const available = Array.isArray(body.methods)
        ? body.methods.filter((m): m is string => typeof m === "string")
        : await this.knownMethods();
      return new MethodNotFoundError(method, available);
    }
    if (answer.status === 401) return new CallUnauthorizedError(method, this.http.origin, detail);
    if (answer.status === 503 && this.envType === "function_based" && detail.startsWith("Too many open")) {
      // the server's connection cap: the method never ran, so another replica may take it
      return new ConnectionError(method, this.http.origin, false, {
        cause: new Error(`HTTP 503: ${detail}`),
      });
    }
    if (answer.status === 504 && errorType === "TimeoutError") {
      return new CallTimeoutError(method, "server", undefined, `${method}: ${detail}`);
    }
    if (answer.status >= 400 && answer.status < 500) {
      return new InvalidArgumentsError(method, answer.status, detail);
    }
    return new RemoteError(method, answer.status, splitDetail(detail, body, errorType));
  }

  private async knownMethods(): Promise<readonly string[]> {
    if (this.methodNames) return this.methodNames;
    try {
      await this.listMethods({ timeoutMs: 5_000 });
    } catch {
      return [];
    }
    return this.methodNames ?? [];
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}

/** The request body as JSON text; arguments JSON cannot hold are the caller's error, found before sending. */
function serialize(method: string, value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (err) {
    throw new ValidationError(
      "args",
      `arguments of ${method} must be JSON-serializable: ${(err as Error).message}`,
    );
  }
}

/** HTTP-based environments take the kwargs as the body; positional args travel as `{args, kwargs}`. */
function directBody(args: readonly unknown[], kwargs: Record<string, unknown>): unknown {
  return args.length ? { args, kwargs } : kwargs;
}

/** Separates the remote message from its traceback; the Python server sends `detail = message\ntraceback`. */
function splitDetail(
  detail: string,
  body: Record<string, unknown>,
  errorType: string | undefined,
): { errorType?: string; message: string; traceback: string } {
  if (typeof body.message === "string" && typeof body.traceback === "string") {
    return { errorType, message: body.message, traceback: body.traceback };
  }
  const at = detail.indexOf("\nTraceback (most recent call last):");
  if (at < 0) return { errorType, message: detail, traceback: "" };
  return { errorType, message: detail.slice(0, at), traceback: detail.slice(at + 1) };
}

function errorCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string") return code;
    current = current.cause;
  }
  return undefined;
}
