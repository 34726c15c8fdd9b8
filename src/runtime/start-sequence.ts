import { InfrastructureError, UnsupportedError } from "../errors.js";
import type { OperationOptions } from "../util/deadline.js";
import { Deadline } from "../util/deadline.js";
import type { InstanceOf, RuntimeInstance } from "./instance.js";
import { asInstance } from "./instance.js";
import type { InstanceKind, InstanceSpec, RuntimeKind } from "./instance-spec.js";
import { instanceKind } from "./instance-spec.js";
import { validateInstanceName } from "./instance-name.js";
import { defaultReadiness } from "./readiness/wait.js";

/**
 * An instance made (or found) but not yet up. The start sequence boots it, waits for its
 * readiness and, when either fails, discards it.
 */
export interface PendingInstance {
  /** Brings it to where readiness can be asked (started, its address known); returns it. */
  boot(deadline: Deadline): Promise<RuntimeInstance>;
  /** Why it can never become ready (it exited), or undefined while it may. */
  failure(): Promise<string | undefined>;
  /** Undoes the start: removes what was made, or lets go of an adopted instance. */
  discard(instance: RuntimeInstance | undefined): Promise<void>;
  /** The error to report for a failed start (default: the failure itself), asked before `discard`. */
  explain?(err: unknown): Promise<unknown>;
}

/** What one runtime contributes to the start sequence. */
export interface StartDriver<P> {
  readonly kind: RuntimeKind;
  /** The instance kinds it starts. */
  readonly kinds: readonly InstanceKind[];
  /** Bound of a start without `timeoutMs`. */
  readonly startTimeoutMs: number;
  /** A name for an instance whose spec gives none. */
  newName(spec: InstanceSpec): string;
  /** Checks and resolves what the spec names (images, addresses, folders) before anything is made. */
  prepare(spec: InstanceSpec, name: string, deadline: Deadline): Promise<P>;
  /**
   * The running instance of this name, when it fits the spec (same image, kind, policy);
   * undefined when there is none. One that does not fit is removed here.
   */
  adopt(
    name: string,
    spec: InstanceSpec,
    prepared: P,
    deadline: Deadline,
  ): Promise<PendingInstance | undefined>;
  /** Makes a new instance. */
  create(name: string, spec: InstanceSpec, prepared: P, deadline: Deadline): Promise<PendingInstance>;
}

/**
 * The start every runtime shares: validate → prepare → adopt a running instance of the
 * name, or create one → boot → wait for the spec's readiness → on any failure, discard
 * what this start made. Returns the instance as the kind the spec asks for.
 */
export async function startInstance<S extends InstanceSpec, P>(
  driver: StartDriver<P>,
  spec: S,
  options: OperationOptions = {},
): Promise<InstanceOf<S>> {
  const kind = instanceKind(spec);
  if (!driver.kinds.includes(kind))
    throw new UnsupportedError(`the ${driver.kind} runtime does not start ${kind} instances`);
  if (spec.name !== undefined) validateInstanceName(spec.name);
  const name = spec.name ?? driver.newName(spec);
  const deadline = new Deadline(`starting ${name}`, {
    timeoutMs: options.timeoutMs ?? driver.startTimeoutMs,
    signal: options.signal,
  });
  const prepared = await deadline.run(() => driver.prepare(spec, name, deadline));
  const adopted =
    spec.name !== undefined && spec.reuse !== false
      ? await driver.adopt(name, spec, prepared, deadline)
      : undefined;
  const pending = adopted ?? (await driver.create(name, spec, prepared, deadline));
  let instance: RuntimeInstance | undefined;
  try {
    instance = await pending.boot(deadline);
    if (instance.kind !== kind)
      throw new InfrastructureError(`${name} started as a ${instance.kind}, not a ${kind}`);
    const readiness = spec.readiness ?? defaultReadiness(kind);
    await readiness.waitUntilReady({ instance, deadline, failure: () => pending.failure() });
  } catch (err) {
    // explained first: what explains it (a log) goes with the instance
    const reported = pending.explain ? await pending.explain(err) : err;
    await pending.discard(instance).catch(() => undefined);
    throw reported;
  }
  // checked above: it is of the spec's kind
  return asInstance(instance) as InstanceOf<S>;
}
