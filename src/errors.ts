/**
 * The one error hierarchy of affinetes. Every error the toolkit throws is an
 * `AffinetesError`; `code` is stable and meant for programs, `message` for people.
 */
export class AffinetesError extends Error {
  /** Stable machine-readable code, e.g. `"VALIDATION"`, `"METHOD_NOT_FOUND"`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An option, flag or body field was invalid. `option` names it (a dotted path). */
export class ValidationError extends AffinetesError {
  readonly option: string;

  constructor(option: string, message: string) {
    super("VALIDATION", option ? `Invalid option "${option}": ${message}` : message);
    this.option = option;
  }
}

/** A requested feature is not available with the given runtime or on this machine. */
export class UnsupportedError extends AffinetesError {
  constructor(message: string) {
    super("UNSUPPORTED", message);
  }
}

/** No engine answered for the requested runtime (e.g. no Docker daemon). */
export class RuntimeUnavailableError extends AffinetesError {
  constructor(runtime: string, message: string, options?: { cause?: unknown }) {
    super("RUNTIME_UNAVAILABLE", `${runtime} runtime unavailable: ${message}`, options);
  }
}

/** A named thing (environment, image, instance) does not exist. */
export class NotFoundError extends AffinetesError {
  readonly kind: string;
  readonly id: string;

  constructor(kind: string, id: string, message?: string) {
    super("NOT_FOUND", message ?? `${kind} not found: ${id}`);
    this.kind = kind;
    this.id = id;
  }
}

/** An image build failed; `log` holds the tail of the build output. */
export class BuildError extends AffinetesError {
  readonly log: string;

  constructor(message: string, log = "", options?: { cause?: unknown }) {
    super("BUILD_FAILED", log ? `${message}\n--- build output (tail) ---\n${log}` : message, options);
    this.log = log;
  }
}

/** An instance failed to start or to become ready; `logs` holds the tail of its output. */
export class InstanceStartError extends AffinetesError {
  readonly instance: string;
  readonly logs: string;

  constructor(instance: string, message: string, logs = "", options?: { cause?: unknown }) {
    super(
      "START_FAILED",
      logs ? `${instance}: ${message}\n--- instance logs (tail) ---\n${logs}` : `${instance}: ${message}`,
      options,
    );
    this.instance = instance;
    this.logs = logs;
  }
}

/**
 * The database holds a table set at a schema version newer than this release knows (a
 * newer release migrated it): starting would misread it, so nothing starts.
 */
export class SchemaTooNewError extends AffinetesError {
  readonly tableSet: string;
  readonly found: number;
  readonly known: number;

  constructor(tableSet: string, found: number, known: number) {
    super(
      "SCHEMA_TOO_NEW",
      `the database's ${tableSet} tables are at schema version ${found}, newer than this release of ` +
        `affinetes knows (${known}): run a release that knows version ${found}, or use another database`,
    );
    this.tableSet = tableSet;
    this.found = found;
    this.known = known;
  }
}

/** Something the Docker engine, a process or a host refused, with the engine's message. */
export class InfrastructureError extends AffinetesError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("INFRASTRUCTURE", message, options);
  }
}

/** The operation was cancelled through its `AbortSignal`. */
export class AbortedError extends AffinetesError {
  constructor(what: string, options?: { cause?: unknown }) {
    super("ABORTED", `${what} was aborted`, options);
  }
}

/** The operation did not finish within its `timeoutMs`. */
export class TimeoutError extends AffinetesError {
  readonly timeoutMs: number;

  constructor(what: string, timeoutMs: number, options?: { cause?: unknown }) {
    super("TIMEOUT", `${what} timed out after ${timeoutMs} ms`, options);
    this.timeoutMs = timeoutMs;
  }
}

/** Base of every failure of a remote method call; `method` names the method. */
export class CallError extends AffinetesError {
  readonly method: string;

  constructor(code: string, method: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.method = method;
  }
}

/** The environment has no such method; `available` lists the ones it has. */
export class MethodNotFoundError extends CallError {
  readonly available: readonly string[];

  constructor(method: string, available: readonly string[]) {
    const hint = available.length ? ` Available methods: ${available.join(", ")}` : "";
    super("METHOD_NOT_FOUND", method, `Method not found: ${method}.${hint}`);
    this.available = available;
  }
}

/** The server rejected the call's arguments or body (HTTP 4xx), with Python's message. */
export class InvalidArgumentsError extends CallError {
  readonly status: number;

  constructor(method: string, status: number, message: string) {
    super("INVALID_ARGUMENTS", method, `${method}: ${message}`);
    this.status = status;
  }
}

/**
 * The method server refused the call (HTTP 401): this client does not hold the token the
 * instance was started with (another client's instance, or one whose token was lost).
 */
export class CallUnauthorizedError extends CallError {
  readonly endpoint: string;

  constructor(method: string, endpoint: string, detail: string) {
    super("CALL_UNAUTHORIZED", method, `${method}: ${endpoint} refused the call: ${detail}`);
    this.endpoint = endpoint;
  }
}

/** The method raised in the environment; carries the remote exception and traceback. */
export class RemoteError extends CallError {
  readonly status: number;
  /** The Python exception class name, when the server reported it. */
  readonly errorType: string | undefined;
  readonly remoteMessage: string;
  readonly remoteTraceback: string;

  constructor(
    method: string,
    status: number,
    info: { errorType?: string; message: string; traceback: string },
  ) {
    const type = info.errorType ? `${info.errorType}: ` : "";
    super("REMOTE_ERROR", method, `${method} failed in the environment: ${type}${info.message}`);
    this.status = status;
    this.errorType = info.errorType;
    this.remoteMessage = info.message;
    this.remoteTraceback = info.traceback;
    if (info.traceback) this.stack = `${this.stack ?? ""}\n--- remote traceback ---\n${info.traceback}`;
  }
}

/** The call did not finish in time: on the client (`timeoutMs`/`_timeout`) or the server (`timeout`). */
export class CallTimeoutError extends CallError {
  readonly timeoutMs: number | undefined;
  readonly side: "client" | "server";

  constructor(method: string, side: "client" | "server", timeoutMs: number | undefined, message?: string) {
    super("CALL_TIMEOUT", method, message ?? `${method} timed out after ${timeoutMs} ms`);
    this.side = side;
    this.timeoutMs = timeoutMs;
  }
}

/** The call was cancelled through its `AbortSignal`. */
export class CallAbortedError extends CallError {
  constructor(method: string, options?: { cause?: unknown }) {
    super("CALL_ABORTED", method, `${method} was aborted`, options);
  }
}

/**
 * The connection to the instance failed. `delivered` tells whether the request may have
 * reached the server: when false it certainly did not, so sending it elsewhere is safe.
 */
export class ConnectionError extends CallError {
  readonly endpoint: string;
  readonly delivered: boolean;

  constructor(
    method: string,
    endpoint: string,
    delivered: boolean,
    options?: { cause?: unknown; hint?: string },
  ) {
    const reason = describeCause(options?.cause);
    const where = delivered
      ? "after the request was sent (the method may have run)"
      : "before the request was sent";
    const hint = options?.hint ? `; ${options.hint}` : "";
    super(
      "CONNECTION_FAILED",
      method,
      `${method}: connection to ${endpoint} failed ${where}: ${reason}${hint}`,
      {
        cause: options?.cause,
      },
    );
    this.endpoint = endpoint;
    this.delivered = delivered;
  }

  /** The same failure, with what the caller decided about it (e.g. why it was not retried). */
  withHint(hint: string): ConnectionError {
    return new ConnectionError(this.method, this.endpoint, this.delivered, { cause: this.cause, hint });
  }
}

/** A command run in an instance exited non-zero or could not run. */
export class CommandError extends AffinetesError {
  readonly command: string;
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;

  constructor(command: string, exitCode: number | null, stdout: string, stderr: string) {
    super("COMMAND_FAILED", `Command failed with exit code ${exitCode}: ${command}\n${stderr.slice(-2000)}`);
    this.command = command;
    this.exitCode = exitCode;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === "string" ? `${code} ${cause.message}` : cause.message;
  }
  return String(cause);
}

/** The environment was cleaned up; it takes no more calls. */
export class EnvironmentClosedError extends AffinetesError {
  constructor(name: string) {
    super("ENVIRONMENT_CLOSED", `Environment ${name} was cleaned up and takes no more calls`);
  }
}

/** Some replicas of a pool failed to start; the ones that started were stopped. */
export class PoolStartError extends AffinetesError {
  readonly failures: ReadonlyArray<{ replica: number; error: Error }>;

  constructor(total: number, failures: ReadonlyArray<{ replica: number; error: Error }>) {
    const lines = failures.map((f) => `  replica ${f.replica}: ${f.error.message.split("\n")[0]}`);
    super(
      "POOL_START_FAILED",
      `${failures.length} of ${total} replicas failed to start:\n${lines.join("\n")}`,
    );
    this.failures = failures;
  }
}

/** No replica of the environment became healthy within the call's time. */
export class NoHealthyInstanceError extends CallError {
  constructor(method: string, total: number) {
    super("NO_HEALTHY_INSTANCE", method, `${method}: none of the ${total} instance(s) is healthy`);
  }
}

/** A host could not be reached or refused us; the message names the host and the cause. */
export class HostConnectionError extends AffinetesError {
  readonly host: string;

  constructor(host: string, cause: string, options?: { cause?: unknown }) {
    super("HOST_UNREACHABLE", `${host}: ${cause}`, options);
    this.host = host;
  }
}

/** Something of that id exists already (e.g. a duplicate run_id). */
export class ConflictError extends AffinetesError {
  readonly id: string;

  constructor(kind: string, id: string) {
    super("CONFLICT", `${kind} already exists: ${id}`);
    this.id = id;
  }
}

/** Admission refused: a tracked resource would exceed its maximum. `short` says which, by how much. */
export class ResourcesExhaustedError extends AffinetesError {
  readonly short: Readonly<Record<string, { requested: number; available: number }>>;

  constructor(short: Record<string, { requested: number; available: number }>) {
    const parts = Object.entries(short).map(
      ([key, s]) => `${key} (requested ${s.requested}, available ${s.available})`,
    );
    super("RESOURCES_EXHAUSTED", `Not enough resources: ${parts.join(", ")}`);
    this.short = short;
  }
}

/**
 * The instance was known but no longer runs: it died, its job ended, or it was closed
 * for being idle. Distinct from a command that failed inside a running instance.
 */
export class InstanceGoneError extends AffinetesError {
  readonly id: string;

  constructor(id: string, reason: string) {
    super("INSTANCE_GONE", `Instance ${id} is gone: ${reason}`);
    this.id = id;
  }
}

/** A Slurm command failed (`sbatch`, `srun`, `scancel`, ...); `stderr` holds what it said. */
export class SlurmError extends AffinetesError {
  readonly command: string;
  readonly stderr: string;

  constructor(command: string, stderr: string, options?: { cause?: unknown }) {
    super("SLURM", `${command} failed: ${stderr.trim() || "no output"}`, options);
    this.command = command;
    this.stderr = stderr;
  }
}

/** A request body passed its cap (an upload, a build context); nothing of it was kept. */
export class PayloadTooLargeError extends AffinetesError {
  readonly limitBytes: number;

  constructor(what: string, limitBytes: number) {
    super("PAYLOAD_TOO_LARGE", `${what} is larger than the server's limit of ${limitBytes} bytes`);
    this.limitBytes = limitBytes;
  }
}

/** The request carries no valid API key. */
export class UnauthenticatedError extends AffinetesError {
  constructor(message = "Unauthorized: send Authorization: Bearer <api key>") {
    super("UNAUTHENTICATED", message);
  }
}

/** The API key is valid but its principal may not do this (e.g. write to a disk it may only read). */
export class PermissionDeniedError extends AffinetesError {
  constructor(message: string) {
    super("PERMISSION_DENIED", message);
  }
}

/**
 * The control plane's API answered with an error: `status` is the HTTP status, `code`
 * the server's error code (SDK side).
 */
export class APIError extends AffinetesError {
  readonly status: number;

  constructor(status: number, code: string, message: string) {
    super(code, message);
    this.status = status;
  }
}

/** A control-plane container failed: its command exited non-zero, or it could not start. */
export class ContainerError extends AffinetesError {
  readonly containerId: string;
  readonly exitCode: number | undefined;
  readonly logs: string;

  constructor(containerId: string, message: string, details: { exitCode?: number; logs?: string } = {}) {
    const logs = details.logs?.trim();
    super("CONTAINER_FAILED", logs ? `${message}\n--- container output (tail) ---\n${logs}` : message);
    this.containerId = containerId;
    this.exitCode = details.exitCode;
    this.logs = details.logs ?? "";
  }
}
