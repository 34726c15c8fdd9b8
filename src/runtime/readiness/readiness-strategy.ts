import type { Deadline } from "../../util/deadline.js";
import type { RuntimeInstance } from "../instance.js";

/** What a readiness strategy waits on: a started instance, the start's deadline, how it fails. */
export interface ReadinessTarget {
  readonly instance: RuntimeInstance;
  readonly deadline: Deadline;
  /** Why the instance can never become ready (it exited, it crashed), or undefined while it may. */
  failure(): Promise<string | undefined>;
}

/**
 * When a start is over: the instance answers `/health`, a command succeeds in it, a line
 * appears in its output, it exited, or merely runs. `Runtime.start` waits for the spec's
 * strategy (`InstanceSpec.readiness`, see `Wait`) and stops the instance when it fails.
 */
export interface ReadinessStrategy {
  /** What it waits for, as a start error names it. */
  readonly description: string;
  /** Resolves once ready; rejects with `InstanceStartError` (or the deadline's error) when it cannot be. */
  waitUntilReady(target: ReadinessTarget): Promise<void>;
}
