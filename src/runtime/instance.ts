import type { ExecOptions, ExecResult } from "../host/command.js";
import type { NetworkPolicy } from "./network-policy.js";

/** How an environment serves calls: through the injected server, or its own HTTP app. */
export type EnvType = "function_based" | "http_based";

/** The implementations of the runtime extension point. */
export type RuntimeKind = "process" | "docker" | "slurm";

/** Restart policy of an instance; `always` brings a crashed container back. */
export type RestartPolicy = "no" | "always" | "on-failure" | "unless-stopped";

/** What to start. A runtime reads the fields that apply to it. */
export interface InstanceSpec {
  /** Image tag or id (docker). */
  image?: string;
  /** Environment folder holding `env.py` (process). */
  envPath?: string;
  /** Instance name. */
  name?: string;
  /**
   * Whether it runs the method server (default true). False makes a shell sandbox: kept
   * alive by an idle shell, ready once running, driven through `exec` (the rollout
   * service's instances); `endpoint()` then throws.
   */
  serve?: boolean;
  /** Working directory of a sandbox's commands (docker: the container's; process: default a fresh folder). */
  workdir?: string;
  /**
   * Adopt a running instance of this name when it runs the same image (default true when
   * a name is given). False skips the lookup: the name is known to be new.
   */
  reuse?: boolean;
  /** Logical environment name, recorded in labels. */
  envName: string;
  /** Overrides the detected type. */
  envType?: EnvType;
  /** Environment variables for the instance. */
  envVars?: Readonly<Record<string, string>>;
  /** Memory limit in bytes (swap included: the limit means what it says). */
  memoryBytes?: number;
  /** CPU limit in cores, e.g. 1.5 (docker). */
  cpus?: number;
  /** Restart policy (docker); default `always`. */
  restartPolicy?: RestartPolicy;
  /** Extra labels, recorded alongside affinetes' own. */
  labels?: Readonly<Record<string, string>>;
  /** Remove an existing instance of the same name and start anew. */
  forceRecreate?: boolean;
  /** Pull the image first, falling back to the local image when the pull fails (docker). */
  pull?: boolean;
  /** The instance outlives its client: exit handlers and garbage collection leave it alone. */
  keep?: boolean;
  /**
   * A task (with `serve: false`): instead of idling, the instance runs `command` (`sh -c`)
   * or, without one, the image's own command, and may exit; it is ready once started
   * (docker).
   */
  task?: { command?: string };
  /** Host folders mounted into the instance (docker). */
  mounts?: ReadonlyArray<{ source: string; target: string; readOnly?: boolean }>;
  /** Container ports published on 127.0.0.1 of the engine's host, each on a free port (docker). */
  ports?: readonly number[];
  /**
   * What the instance may reach on the network (default `"full"`). Runtimes that cannot
   * hold a policy refuse any other value rather than ignore it.
   */
  network?: NetworkPolicy;
  /**
   * The token the method server requires (`Authorization: Bearer`), handed to it in
   * `AFFINETES_AUTH_TOKEN`; the runtime keeps it where only the owner reads it, so a later
   * client finds it with the instance (`Instance.authToken`). Absent: the server answers
   * anyone. `loadEnv` gives each instance a new one.
   */
  authToken?: string;
  /** Extra arguments of the scheduler's submit command, e.g. `["--partition=gpu", "--time=1:00:00"]` (slurm). */
  schedulerArgs?: readonly string[];
}

/** `Instance.exec` takes what a host's commands take (see `Host.exec`). */
export type { ExecOptions, ExecResult } from "../host/command.js";

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

/**
 * A running environment instance. `stop()` is idempotent; disposing stops it.
 */
export interface Instance extends AsyncDisposable {
  readonly id: string;
  readonly name: string;
  readonly runtime: RuntimeKind;
  readonly envType: EnvType;
  /** True when `start` adopted an instance that was already running. */
  readonly reused: boolean;
  /** True when the instance outlives its client (`keep`). */
  readonly keep: boolean;
  /** Where it runs: `localhost`, or the host's `ssh://user@host:port`. */
  readonly host: string;
  /** True when it runs the method server (`endpoint()` answers); false for a shell sandbox. */
  readonly serves: boolean;
  /** Base URL of the instance's server, reachable from this process. */
  endpoint(): string;
  /**
   * The token its method server requires, as recorded when it started (adopted and found
   * instances too); undefined when it takes none. A secret: never logged or listed.
   */
  readonly authToken?: string | undefined;
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
