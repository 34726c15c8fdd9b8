import type { OperationOptions } from "../util/deadline.js";
import type { Instance, InstanceInfo, InstanceSpec, RuntimeKind } from "./instance.js";

/**
 * The runtime extension point: starts and finds instances on one host.
 * Every implementation passes the conformance suite in `test/runtime/conformance.ts`.
 */
export interface Runtime {
  readonly kind: RuntimeKind;
  /** Starts an instance (or adopts a running one of the same name) and waits until it is ready. */
  start(spec: InstanceSpec, options?: OperationOptions): Promise<Instance>;
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
