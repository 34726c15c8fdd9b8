import type { OperationOptions } from "../util/deadline.js";
import type { Instance, InstanceInfo, InstanceOf } from "./instance.js";
import type { InstanceSpec, RuntimeKind } from "./instance-spec.js";
import type { RuntimeImages } from "./runtime-images.js";

/**
 * The runtime extension point: starts and finds instances on one host, and owns its
 * images. Every implementation passes the conformance suite in `test/runtime/conformance.ts`.
 */
export interface Runtime {
  readonly kind: RuntimeKind;
  /** `localhost`, or the host it runs instances on. */
  readonly host: string;
  /** The images it runs instances of; undefined for a runtime that runs none (process). */
  readonly images: RuntimeImages | undefined;
  /** Throws `RuntimeUnavailableError` unless the runtime's engine answers within `timeoutMs`. */
  ping(timeoutMs?: number): Promise<void>;
  /**
   * Starts an instance of the kind the spec asks for (a `ServingInstance`, a
   * `SandboxInstance` with `serve: false`, a `TaskInstance` with `task`), or adopts a
   * running one of the same name, and waits until it is ready (`spec.readiness`).
   */
  start<S extends InstanceSpec>(spec: S, options?: OperationOptions): Promise<InstanceOf<S>>;
  /** The instance of this id or name, in any state (e.g. a task that ended); undefined when there is none. */
  attach(idOrName: string): Promise<Instance | undefined>;
  /** The instances affinetes created on this runtime, of any client. */
  list(): Promise<InstanceInfo[]>;
  /**
   * The running instances of the environment `pool` (as `loadEnv` named it), adopted
   * from whichever process started them, in name order. Empty when there are none.
   */
  find(pool: string): Promise<Instance[]>;
  /**
   * Stops and removes the instances affinetes created here, in any state: those of the
   * environment `pool`, or all of them. Returns their names.
   */
  removeAll(pool?: string): Promise<string[]>;
  /** Removes instances whose owning client died, unless they were started with `keep`. Returns their names. */
  garbageCollect(): Promise<string[]>;
  /** Releases the runtime's connections. Instances keep running. */
  close(): Promise<void>;
}
