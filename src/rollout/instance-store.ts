import { ResourcesExhaustedError } from "../errors.js";

/** What the rollout service records about one instance; it must survive a restart. */
export interface InstanceRecord {
  runId: string;
  /** The service that started it (`afs serve --service-id`): only its owner adopts or expires it. */
  owner: string;
  /**
   * The principal (API key's owner) it belongs to: only it and the admin see it and act
   * on it. Empty for records written before principals were recorded (the admin's only).
   */
  principal: string;
  containerName: string | undefined;
  containerType: string;
  image: string;
  /** Resources the instance holds, by key (e.g. `cpus`, `memory_gb`); `instances` is implied. */
  resources: Record<string, number>;
  /** The runtime's id of the instance (container id, pid), once started. */
  runtimeId: string | undefined;
  state: "starting" | "running";
  createdAt: number;
  lastUsedAt: number;
  numCmd: number;
  /** The environment configuration it was started with (JSON). */
  config: Record<string, unknown>;
}

/** Which records `list` returns; every given field must match. */
export interface InstanceFilter {
  runId?: string;
  containerName?: string;
  owner?: string;
  principal?: string;
}

/** Maximum per tracked resource key; `instances` counts instances. Keys absent are not tracked. */
export type ResourceLimits = Readonly<Record<string, number>>;

/** The key counting instances themselves. */
export const INSTANCES_KEY = "instances";

/**
 * The store extension point of the service: SQLite (embedded default) and PostgreSQL
 * (several service replicas) implement it, and both pass test/rollout/store/instance-store-conformance.ts.
 */
export interface InstanceStore {
  /**
   * Records the instance if every tracked resource stays within its limit, atomically
   * with respect to every other admission (also from other service processes).
   * Throws `ConflictError` for a run id that exists, `ResourcesExhaustedError` naming
   * what is short.
   */
  admit(record: InstanceRecord, limits: ResourceLimits): Promise<void>;
  get(runId: string): Promise<InstanceRecord | undefined>;
  /** Updates fields of a recorded instance; false when there is none. */
  update(
    runId: string,
    patch: Partial<Pick<InstanceRecord, "runtimeId" | "state" | "lastUsedAt">>,
  ): Promise<boolean>;
  /** Counts one command and marks the instance used now. */
  touch(runId: string, at: number): Promise<void>;
  /** Forgets an instance and frees what it held; false when there was none (closing is idempotent). */
  release(runId: string): Promise<boolean>;
  list(filter?: InstanceFilter): Promise<InstanceRecord[]>;
  /** What the recorded instances hold, for each of `keys`. */
  allocated(keys: readonly string[]): Promise<Record<string, number>>;
  close(): Promise<void>;
}

/**
 * The admission rule every store applies inside its atomic section: throws
 * `ResourcesExhaustedError` naming each tracked key that `record` would push past its
 * limit, given what the recorded instances already `held`.
 */
export function checkAdmission(
  record: InstanceRecord,
  limits: ResourceLimits,
  held: Record<string, number>,
): void {
  const short: Record<string, { requested: number; available: number }> = {};
  for (const [key, max] of Object.entries(limits)) {
    const requested = key === INSTANCES_KEY ? 1 : (record.resources[key] ?? 0);
    const available = max - (held[key] ?? 0);
    if (requested > available) short[key] = { requested, available: Math.max(0, available) };
  }
  if (Object.keys(short).length) throw new ResourcesExhaustedError(short);
}
