import { UnsupportedError } from "../errors.js";
import type { ExecOptions, ExecResult } from "../util/exec-result.js";
import type { EnvType, InstanceKind, InstanceSpec, RuntimeKind } from "./instance-spec.js";

export type { ExecOptions, ExecResult } from "../util/exec-result.js";
export type {
  EnvType,
  InstanceKind,
  InstanceSpec,
  RestartPolicy,
  RuntimeKind,
  SandboxSpec,
  ServeSpec,
  TaskSpec,
} from "./instance-spec.js";

/** Lifecycle events an instance reports: it exited (crashed, was killed) or (re)started. */
export type InstanceEvent = "exited" | "started";

/** What `Runtime.list` reports about an instance. */
export interface InstanceInfo {
  id: string;
  name: string;
  /** The environment it serves (replicas share it). */
  pool: string;
  /** `localhost`, or the SSH host's `ssh://user@host:port`. */
  host: string;
  runtime: RuntimeKind;
  envName: string;
  image: string;
  state: "running" | "stopped";
  endpoint: string | undefined;
  createdAt: Date;
  keep: boolean;
}

/** What every kind of instance does. `stop()` is idempotent; disposing stops it. */
export interface InstanceBase extends AsyncDisposable {
  readonly kind: InstanceKind;
  readonly id: string;
  readonly name: string;
  readonly runtime: RuntimeKind;
  /** True when `start` adopted an instance that was already running. */
  readonly reused: boolean;
  /** True when the instance outlives its client (`keep`). */
  readonly keep: boolean;
  /** Where it runs: `localhost`, or the host's `ssh://user@host:port`. */
  readonly host: string;
  /** Runs a shell command inside the instance. */
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  /** The instance's output (stdout and stderr), the last `tail` lines when given. */
  logs(options?: { tail?: number }): Promise<string>;
  /** The instance's output as it comes (after the last `tail` lines), until `signal` fires or it stops. */
  followLogs(options?: { tail?: number; signal?: AbortSignal }): AsyncIterable<string>;
  /** Whether the instance is still running. */
  isRunning(): Promise<boolean>;
  /**
   * Subscribes to the instance's lifecycle events, as the engine reports them (no
   * polling). Returns the function that unsubscribes.
   */
  watch(listener: (event: InstanceEvent) => void): () => void;
  /** Re-reads the instance's address, which may change when a container restarts. */
  refresh(): Promise<void>;
  /**
   * Starts the instance again when it stopped by itself or was stopped outside affinetes
   * (not through `stop()`). Resolves false when it cannot be brought back.
   */
  revive(): Promise<boolean>;
  /** Stops and removes the instance. Safe to call more than once. */
  stop(): Promise<void>;
  /** Lets go of the client side (tunnels, connections) and leaves the instance running. */
  detach(): Promise<void>;
  /**
   * Best-effort synchronous stop, for the moment the client process exits and can no
   * longer wait for promises. Containers are queued and removed together by the exit
   * handler. Prefer `stop()` everywhere else.
   */
  stopSync(): void;
}

/** An environment's method server (`loadEnv`'s replicas). */
export interface ServingInstance extends InstanceBase {
  readonly kind: "serve";
  readonly envType: EnvType;
  /** Base URL of the instance's server, reachable from this process. */
  endpoint(): string;
  /**
   * The token its method server requires, as recorded when it started (adopted and found
   * instances too); undefined when it takes none. A secret: never logged or listed.
   */
  readonly authToken?: string | undefined;
}

/** A shell sandbox: no server, driven through `exec` (the rollout service's instances). */
export interface SandboxInstance extends InstanceBase {
  readonly kind: "sandbox";
}

/** A command that runs and exits (the control plane's containers, the queue's container processes). */
export interface TaskInstance extends InstanceBase {
  readonly kind: "task";
  /** Waits for it to exit; returns its exit code (at once when it has already exited). */
  wait(options?: { signal?: AbortSignal }): Promise<number>;
  /** The ports of `spec.ports` as reached from this machine: port → `host:port`. */
  publishedPorts(): Promise<Record<number, string>>;
}

/** An instance of any kind; `kind` tells which. */
export type Instance = ServingInstance | SandboxInstance | TaskInstance;

/** The kind of instance `Runtime.start` returns for a spec of type `S`. */
export type InstanceOf<S extends InstanceSpec> = S extends { task: object }
  ? TaskInstance
  : S extends { serve: false }
    ? SandboxInstance
    : S extends { serve?: true; envName: string } // envName: not a weak type, which nothing would match
      ? ServingInstance
      : Instance;

/**
 * What a runtime's instance class implements: every kind's methods, `kind` saying which
 * apply (a sandbox's `endpoint()` throws). Callers see it through `asInstance`, typed by kind.
 */
export interface RuntimeInstance extends InstanceBase {
  readonly envType: EnvType;
  endpoint(): string;
  readonly authToken?: string | undefined;
  wait(options?: { signal?: AbortSignal }): Promise<number>;
  publishedPorts(): Promise<Record<number, string>>;
}

/** The error of `endpoint()` on an instance that runs no method server. */
export function noServer(name: string, kind: InstanceKind): UnsupportedError {
  return new UnsupportedError(
    `${name} is a ${kind === "task" ? "task" : "shell sandbox"}: it runs no method server`,
  );
}

/** A runtime's instance as the kind its `kind` names. */
export function asInstance(instance: RuntimeInstance): Instance {
  return instance as Instance;
}
