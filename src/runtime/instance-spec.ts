import type { NetworkPolicy } from "./network-policy.js";
import type { ReadinessStrategy } from "./readiness/readiness-strategy.js";

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
   * Whether it runs the method server (default true: a `ServingInstance`). False makes a
   * shell sandbox (`SandboxInstance`): kept alive by an idle shell, ready once running,
   * driven through `exec` (the rollout service's instances).
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
   * A task (`TaskInstance`, with `serve: false`): instead of idling, the instance runs
   * `command` (`sh -c`) or, without one, the image's own command, and exits; it is ready
   * once started.
   */
  task?: { command?: string };
  /**
   * When the start is over (default by kind: a serving instance once `/health` answers, a
   * sandbox once it runs, a task once started). See `Wait`.
   */
  readiness?: ReadinessStrategy;
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

/** A spec of a method server (`ServingInstance`). */
export type ServeSpec = InstanceSpec & { serve?: true; task?: undefined };
/** A spec of a shell sandbox (`SandboxInstance`). */
export type SandboxSpec = InstanceSpec & { serve: false; task?: undefined };
/** A spec of a task (`TaskInstance`). */
export type TaskSpec = InstanceSpec & { serve: false; task: { command?: string } };

/** The three kinds of instance: a method server, a shell sandbox, a task that exits. */
export type InstanceKind = "serve" | "sandbox" | "task";

/** The kind of instance a spec asks for. */
export function instanceKind(spec: Pick<InstanceSpec, "serve" | "task">): InstanceKind {
  if (spec.task) return "task";
  return spec.serve === false ? "sandbox" : "serve";
}
