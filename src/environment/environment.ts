import { EnvironmentClosedError, ValidationError } from "../errors.js";
import type { InstancePool, PoolCallOptions, PoolStats } from "../pool/instance-pool.js";
import type { EnvType, ExecOptions, ExecResult, RuntimeKind, ServingInstance } from "../runtime/instance.js";
import type { CallOptions, MethodInfo } from "../transport/method-client.js";

/** Arguments of a remote call: an object is the kwargs, an array the positional args. */
export type CallArguments = Record<string, unknown> | readonly unknown[];

/** A remote method as the proxy exposes it: `env.add({ a: 1, b: 2 })`. */
export type RemoteMethod = (args?: CallArguments, options?: PoolCallOptions) => Promise<unknown>;

/** Any method name of an environment whose methods are not declared. */
export type RemoteMethods = { [method: string]: RemoteMethod };

export interface EnvironmentInit {
  name: string;
  /** The replicas serving the environment (one or more). */
  pool: InstancePool;
  /** When false, `cleanup()` and exit handlers leave the instance running. */
  cleanup: boolean;
  /** Client-side bound of a call when neither `timeoutMs` nor `_timeout` is given. */
  defaultCallTimeoutMs: number;
  /** Called once when the environment is cleaned up. */
  onClose?: (env: Environment) => void;
}

/**
 * A running environment: call its methods, list them, and clean it up. What `loadEnv`
 * returns is this object behind a proxy, so `env.anyMethod(kwargs)` is a remote call.
 */
export class Environment implements AsyncDisposable {
  readonly name: string;
  private readonly pool: InstancePool;
  private readonly autoCleanup: boolean;
  private readonly defaultCallTimeoutMs: number;
  private readonly onClose: ((env: Environment) => void) | undefined;
  private closing: Promise<void> | undefined;

  constructor(init: EnvironmentInit) {
    this.name = init.name;
    this.pool = init.pool;
    this.autoCleanup = init.cleanup;
    this.defaultCallTimeoutMs = init.defaultCallTimeoutMs;
    this.onClose = init.onClose;
  }

  /** The first replica: what single-instance accessors describe. */
  private get instance(): ServingInstance {
    return this.pool.instances[0] as ServingInstance;
  }

  /** `"docker"` or `"process"`. */
  get mode(): RuntimeKind {
    return this.instance.runtime;
  }

  get envType(): EnvType {
    return this.instance.envType;
  }

  /** Base URL of the environment's server. */
  get endpoint(): string {
    return this.instance.endpoint();
  }

  /** Id of the container or process serving the environment. */
  get instanceId(): string {
    return this.instance.id;
  }

  /** True when `loadEnv` adopted running instances (reuse by name) instead of starting new ones. */
  get reused(): boolean {
    return this.pool.instances.every((i) => i.reused);
  }

  /** The instances serving the environment, one per replica. */
  get instances(): readonly ServingInstance[] {
    return this.pool.instances;
  }

  /** Number of replicas. */
  get replicas(): number {
    return this.pool.instances.length;
  }

  /**
   * Calls a method. `args` is the kwargs object, or an array of positional args.
   * A `_timeout` kwarg (seconds, as in the Python affinetes) bounds the call on the
   * client and is not sent; `options.timeoutMs` takes precedence over it.
   */
  async call(method: string, args: CallArguments = {}, options: PoolCallOptions = {}): Promise<unknown> {
    if (this.closing) throw new EnvironmentClosedError(this.name);
    if (typeof method !== "string" || !method)
      throw new ValidationError("method", "must be a non-empty string");
    const { positional, kwargs, timeoutMs } = splitArguments(args);
    return this.pool.call(method, positional, kwargs, {
      ...options,
      timeoutMs: options.timeoutMs ?? timeoutMs ?? this.defaultCallTimeoutMs,
    });
  }

  /** The methods the environment exposes, with their signatures. */
  async listMethods(options: CallOptions = {}): Promise<MethodInfo[]> {
    if (this.closing) throw new EnvironmentClosedError(this.name);
    return this.pool.listMethods({ timeoutMs: 30_000, ...options });
  }

  /** Requests, health and latency of the environment and of each replica. */
  getStats(): PoolStats {
    return this.pool.getStats();
  }

  /** True until the environment is cleaned up. */
  isReady(): boolean {
    return this.closing === undefined;
  }

  /** Runs a shell command in the environment's instance. */
  exec(command: string, options?: ExecOptions): Promise<ExecResult> {
    return this.instance.exec(command, options);
  }

  /** The instance's output; the last `tail` lines when given. */
  logs(options?: { tail?: number }): Promise<string> {
    return this.instance.logs(options);
  }

  /**
   * Closes the connections and stops the instance, unless the environment was loaded
   * with `cleanup: false` (then it keeps running; `stop()` removes it). Idempotent.
   */
  cleanup(): Promise<void> {
    this.closing ??= this.close(this.autoCleanup);
    return this.closing;
  }

  /** Stops and removes the instance, whatever `cleanup` said. Idempotent. */
  async stop(): Promise<void> {
    await this.cleanup();
    await this.pool.stopInstances();
  }

  /** Whether exit handlers must stop this environment's instance. */
  get stopsOnExit(): boolean {
    return this.autoCleanup && this.closing === undefined;
  }

  /** Synchronous stop for process exit; see `Instance.stopSync`. */
  stopSync(): void {
    for (const instance of this.pool.instances) instance.stopSync();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.cleanup();
  }

  private async close(stopInstance: boolean): Promise<void> {
    try {
      await this.pool.close(stopInstance);
    } finally {
      this.onClose?.(this);
    }
  }
}

function splitArguments(args: CallArguments): {
  positional: unknown[];
  kwargs: Record<string, unknown>;
  timeoutMs: number | undefined;
} {
  if (Array.isArray(args)) return { positional: [...(args as unknown[])], kwargs: {}, timeoutMs: undefined };
  if (args === null || typeof args !== "object") {
    throw new ValidationError(
      "args",
      "must be an object of keyword arguments or an array of positional arguments",
    );
  }
  const { _timeout, ...kwargs } = args as Record<string, unknown>;
  if (_timeout === undefined) return { positional: [], kwargs, timeoutMs: undefined };
  if (typeof _timeout !== "number" || !(_timeout > 0)) {
    throw new ValidationError("_timeout", "must be a positive number of seconds");
  }
  return { positional: [], kwargs, timeoutMs: Math.round(_timeout * 1000) };
}
