import { randomBytes } from "node:crypto";
import type { Principal } from "../auth/principals.js";
import { InstanceGoneError, NotFoundError, UnsupportedError, ValidationError } from "../errors.js";
import { sanitizeName } from "../runtime/instance-name.js";
import type { Instance } from "../runtime/instance.js";
import { LABELS } from "../runtime/labels.js";
import type { NetworkPolicy } from "../runtime/network-policy.js";
import type { Runtime } from "../runtime/runtime.js";
import type { InstanceRecord, InstanceStore, ResourceLimits } from "./instance-store.js";
import { INSTANCES_KEY } from "./instance-store.js";
import { shellQuote } from "../util/shell-quote.js";
import type { EnvironmentConfig, ExecuteRequest, StartRequest } from "./request-schemas.js";
import { EnvironmentCatalog } from "./environment-catalog.js";
import { checkContainerType, mayActOn, mayUseEnvironment } from "./rollout-access.js";

/**
 * The runtime serving each `container_type`, or why that type is unavailable on this
 * server (the reason becomes the client's error).
 */
export type RuntimeTable = Readonly<Record<string, Runtime | string>>;

export interface RolloutServiceOptions {
  store: InstanceStore;
  limits: ResourceLimits;
  runtimes: RuntimeTable;
  /**
   * This service's identity in the store: it adopts and expires only its own instances,
   * so several services can share one database. Stable across restarts.
   */
  serviceId: string;
  /** Cap of a command's output per stream (bytes). */
  maxOutputBytes?: number;
  /** Default command timeout when neither the request nor the instance gives one (seconds). */
  defaultTimeoutS?: number;
  /** Close instances that ran no command for this long (seconds). */
  idleTtlS?: number;
  /** Predefined environments a start request may name (`--environments`). */
  catalog?: EnvironmentCatalog;
  /**
   * What an instance is charged of each resource key its request leaves out, and runs
   * with (`cpus`, `memory_gb`): `--default-resources`. Every key tracked in `limits` is
   * charged, {@link DEFAULT_CHARGE} when this gives no amount for it.
   */
  defaultResources?: ResourceLimits;
  /** The network policy of instances whose request and predefined entry give none (default `"full"`). */
  defaultNetwork?: NetworkPolicy;
}

/** What an instance is charged of a tracked resource its request leaves out, unless `--default-resources` says. */
export const DEFAULT_CHARGE = 1;

/** What `recover()` did with the store's records and the runtimes' instances. */
export interface RecoveryReport {
  /** Run ids whose instance still runs: served again. */
  adopted: string[];
  /** Run ids whose instance vanished: their resources are freed. */
  released: string[];
  /** Instance ids of this service no record claims (started, then the service died): stopped. */
  removed: string[];
}

/** The label that ties a sandbox to its run id. */
export const RUN_LABEL = "affinetes.rollout.run";

/** How many expired run ids are remembered, to tell a client why its instance is gone. */
const EXPIRED_MEMORY = 10_000;

/** The exit status of the wrapper when a command's `cwd` cannot be entered (with a marker on stdout). */
const CWD_MISSING = 97;

/** An instance this service serves. */
interface LiveInstance {
  instance: Instance;
  /** Its own command timeout (`environment_config.timeout`). */
  timeoutS: number | undefined;
  /** The principal it belongs to. */
  principal: string;
}

/**
 * The rollout service's logic, without HTTP: admission through the store (atomic, also
 * across service processes), shell sandboxes through the runtimes, and bookkeeping.
 * Sandboxes outlive the service process, so a restarted service adopts them (`recover`).
 */
export class RolloutService {
  /** The instances this service serves. */
  private readonly live = new Map<string, LiveInstance>();
  private readonly running = new Map<string, number>(); // commands in flight per run id
  /** Why recently expired runs are gone, and whose they were. */
  private readonly expired = new Map<string, { reason: string; principal: string }>();
  private readonly started = Date.now();
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: RolloutServiceOptions) {}

  /** The pool label value of this service's sandboxes: how a restart finds them again. */
  get pool(): string {
    return `rollout-${sanitizeName(this.options.serviceId)}`;
  }

  /**
   * Starts an instance for `principal`: the container type and predefined entry must be
   * allowed to it, every tracked resource is charged (a default when the request leaves
   * it out), and the instance runs with what it was charged.
   */
  async start(
    request: StartRequest,
    principal: Principal,
  ): Promise<{ status: "success"; instance_id: string }> {
    const catalog = this.options.catalog ?? EnvironmentCatalog.empty();
    const config = catalog.resolve(request, (name) => mayUseEnvironment(principal, name));
    checkContainerType(principal, config.container_type);
    const runtime = this.runtimeFor(config.container_type);
    if (config.sbatch_args && runtime.kind !== "slurm") {
      throw new ValidationError("environment_config.sbatch_args", "sbatch arguments need --runner slurm");
    }
    if (!["local", "bubblewrap"].includes(config.container_type) && !config.image) {
      throw new ValidationError(
        "environment_config.image",
        `a ${config.container_type} instance needs an image`,
      );
    }
    checkWorkdir(config.container_type, config.cwd);
    const resources = this.charges(config, request.environment_config === undefined);
    const network = config.network ?? this.options.defaultNetwork ?? "full";
    const now = Date.now();
    const record: InstanceRecord = {
      runId: request.run_id,
      owner: this.options.serviceId,
      principal: principal.name,
      containerName: request.container_name,
      containerType: config.container_type,
      image: config.image ?? "",
      resources,
      runtimeId: undefined,
      state: "starting",
      createdAt: now,
      lastUsedAt: now,
      numCmd: 0,
      config: { ...config, resources, network },
    };
    await this.options.store.admit(record, this.options.limits);
    this.expired.delete(request.run_id);
    let instance: Instance;
    try {
      const cpus = resources.cpus;
      const memoryGb = resources.memory_gb;
      instance = await runtime.start({
        envName: "rollout",
        name: `rollout-${sanitizeName(request.container_name ?? request.run_id).slice(0, 60)}-${randomBytes(3).toString("hex")}`,
        reuse: false,
        serve: false,
        restartPolicy: "no",
        // Outlives this process: a restarted service adopts it; closing, the idle TTL
        // and shutdown stop it.
        keep: true,
        network,
        ...(config.image ? { image: config.image } : {}),
        ...(config.cwd ? { workdir: config.cwd } : {}),
        ...(config.env ? { envVars: config.env } : {}),
        ...(cpus !== undefined ? { cpus } : {}),
        ...(memoryGb !== undefined ? { memoryBytes: Math.round(memoryGb * 2 ** 30) } : {}),
        ...(config.sbatch_args ? { schedulerArgs: config.sbatch_args } : {}),
        labels: { [RUN_LABEL]: request.run_id, [LABELS.pool]: this.pool },
      });
    } catch (err) {
      await this.options.store.release(request.run_id); // nothing half-created is kept
      throw err;
    }
    this.live.set(request.run_id, { instance, timeoutS: config.timeout, principal: principal.name });
    await this.options.store.update(request.run_id, { state: "running", runtimeId: instance.id });
    return { status: "success", instance_id: request.run_id };
  }

  /**
   * What an instance is charged, key by key: what it asked for, and for each key tracked
   * (or given a default) that it left out, the default. A tracked key cannot be charged
   * nothing: that would admit an instance past the limit it is meant to hold.
   */
  private charges(config: EnvironmentConfig, flat: boolean): Record<string, number> {
    const defaults = this.options.defaultResources ?? {};
    const charged: Record<string, number> = { ...config.resources };
    const keys = new Set([...Object.keys(this.options.limits), ...Object.keys(defaults)]);
    keys.delete(INSTANCES_KEY);
    for (const key of keys) {
      const amount = charged[key] ?? defaults[key] ?? DEFAULT_CHARGE;
      if (!(amount > 0) && key in this.options.limits) {
        throw new ValidationError(
          `${flat ? "" : "environment_config."}resources.${key}`,
          `${key} is a tracked resource on this server: ask for more than 0, or leave it out to be charged ${defaults[key] ?? DEFAULT_CHARGE}`,
        );
      }
      charged[key] = amount;
    }
    return charged;
  }

  /** Runs a command in one of `principal`'s instances (another's answers as unknown). */
  async execute(request: ExecuteRequest, principal: Principal) {
    const { instance, timeoutS: ownTimeoutS } = await this.liveInstance(request.run_id, principal);
    const timeoutS = request.timeout ?? ownTimeoutS ?? this.options.defaultTimeoutS ?? 600;
    this.running.set(request.run_id, (this.running.get(request.run_id) ?? 0) + 1);
    try {
      // a fresh marker: the command's own output cannot pass for it
      const cwdMissing = request.cwd !== undefined ? `affinetes-cwd-${randomBytes(8).toString("hex")}` : "";
      const result = await instance.exec(shellCommand(request.cmd, request.cwd, cwdMissing), {
        timeoutMs: Math.round(timeoutS * 1000),
        ...(request.env ? { env: request.env } : {}),
        ...(this.options.maxOutputBytes ? { maxOutputBytes: this.options.maxOutputBytes } : {}),
      });
      if (cwdMissing && result.exitCode === CWD_MISSING && result.stdout === cwdMissing) {
        throw new ValidationError(
          "cwd",
          `${request.cwd ?? ""} is not a folder the command can enter in the instance`,
        );
      }
      await this.options.store.touch(request.run_id, Date.now());
      return {
        status: "success" as const,
        result: {
          output: result.stdout + result.stderr,
          returncode: result.exitCode,
          timed_out: result.timedOut,
          truncated: result.truncated,
        },
      };
    } catch (err) {
      if (err instanceof ValidationError) throw err;
      throw await this.goneOr(request.run_id, instance, err);
    } finally {
      const left = (this.running.get(request.run_id) ?? 1) - 1;
      if (left > 0) this.running.set(request.run_id, left);
      else this.running.delete(request.run_id);
    }
  }

  /**
   * Stops one of `principal`'s instances and frees what it held. Idempotent: an unknown
   * run id is fine, and so is another principal's, which it leaves alone (the answer
   * must not tell that it exists).
   */
  async close(runId: string, principal: Principal): Promise<{ status: "success" }> {
    const live = this.live.get(runId);
    if (live) {
      if (mayActOn(principal, live.principal)) await this.closeRun(runId);
      return { status: "success" };
    }
    const record = await this.options.store.get(runId);
    if (!record || !mayActOn(principal, record.principal)) return { status: "success" };
    if (record.owner !== this.options.serviceId) throw this.elsewhere(record);
    await this.closeRun(runId);
    return { status: "success" };
  }

  /** Stops the instance and frees what it held (whoever's it is). */
  private async closeRun(runId: string): Promise<void> {
    const live = this.live.get(runId);
    this.live.delete(runId);
    await live?.instance.stop();
    await this.options.store.release(runId);
  }

  async availableResources(): Promise<Record<string, number>> {
    const keys = Object.keys(this.options.limits);
    const held = await this.options.store.allocated(keys);
    return Object.fromEntries(keys.map((k) => [k, (this.options.limits[k] ?? 0) - (held[k] ?? 0)]));
  }

  /**
   * The service's state: resources (service-wide) and the instances `principal` may see
   * (its own; every one for the admin).
   */
  async stats(filter: { runId?: string; containerName?: string }, principal: Principal) {
    const records = await this.options.store.list({
      ...filter,
      ...(principal.admin ? {} : { principal: principal.name }),
    });
    const keys = Object.keys(this.options.limits);
    const allocated = await this.options.store.allocated(keys);
    return {
      server_time: new Date().toISOString(),
      uptime_s: Math.round((Date.now() - this.started) / 1000),
      service_id: this.options.serviceId,
      active_instances: principal.admin
        ? this.live.size
        : [...this.live.values()].filter((l) => l.principal === principal.name).length,
      total_instances: (await this.options.store.allocated([INSTANCES_KEY]))[INSTANCES_KEY] ?? 0,
      max_resources: this.options.limits,
      allocated_resources: allocated,
      available_resources: await this.availableResources(),
      instances: records.map((r) => ({
        run_id: r.runId,
        container_name: r.containerName ?? null,
        image: r.image,
        type: r.containerType,
        state: r.state,
        runtime_id: r.runtimeId ?? null,
        service_id: r.owner,
        principal: r.principal,
        created_at: new Date(r.createdAt).toISOString(),
        last_used_at: new Date(r.lastUsedAt).toISOString(),
        num_cmd: r.numCmd,
      })),
    };
  }

  /**
   * Reconciles the store with the runtimes after a (re)start: this service's records
   * whose instance still runs are adopted, those whose instance vanished are released,
   * and sandboxes of this service that no record claims are stopped. Records of a
   * runtime that does not answer now are left as they are.
   */
  async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { adopted: [], released: [], removed: [] };
    const found = new Map<string, Instance>();
    const answered = new Set<Runtime>();
    for (const runtime of new Set(Object.values(this.options.runtimes))) {
      if (typeof runtime === "string") continue;
      const instances = await runtime.find(this.pool).catch(() => undefined);
      if (!instances) continue;
      answered.add(runtime);
      for (const instance of instances) found.set(instance.id, instance);
    }
    for (const record of await this.options.store.list({ owner: this.options.serviceId })) {
      const runtime = this.options.runtimes[record.containerType];
      if (typeof runtime !== "object" || !answered.has(runtime)) continue;
      const instance = record.runtimeId !== undefined ? found.get(record.runtimeId) : undefined;
      if (instance) {
        found.delete(instance.id);
        this.live.set(record.runId, {
          instance,
          timeoutS: record.config.timeout as number | undefined,
          principal: record.principal,
        });
        if (record.state !== "running") await this.options.store.update(record.runId, { state: "running" });
        report.adopted.push(record.runId);
      } else {
        await this.options.store.release(record.runId);
        report.released.push(record.runId);
      }
    }
    for (const orphan of found.values()) {
      await orphan.stop();
      report.removed.push(orphan.id);
    }
    return report;
  }

  /** Closes instances that ran no command for `idleTtlS`, checking a few times per TTL. */
  startIdleReaper(): void {
    const ttlS = this.options.idleTtlS;
    if (ttlS === undefined || this.idleTimer) return;
    const everyMs = Math.min(30_000, Math.max(200, (ttlS * 1000) / 4));
    this.idleTimer = setInterval(() => void this.closeIdle(ttlS).catch(() => undefined), everyMs);
    this.idleTimer.unref();
  }

  /** Closes this service's instances idle for more than `ttlS` seconds; returns their run ids. */
  async closeIdle(ttlS: number): Promise<string[]> {
    const cutoff = Date.now() - ttlS * 1000;
    const idle = (await this.options.store.list({ owner: this.options.serviceId })).filter(
      (r) => r.state === "running" && r.lastUsedAt < cutoff && !this.running.has(r.runId),
    );
    for (const record of idle) {
      await this.closeRun(record.runId);
      this.remember(record.runId, record.principal, `closed after ${ttlS} s without a command (idle TTL)`);
    }
    return idle.map((r) => r.runId);
  }

  /**
   * Stops the service's background work. With `stopInstances` (the default) it also stops
   * its instances and forgets them; without, they keep running for the next start to adopt.
   */
  async shutdown(options: { stopInstances?: boolean } = {}): Promise<void> {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = undefined;
    if (options.stopInstances === false) {
      await Promise.allSettled([...this.live.values()].map((l) => l.instance.detach()));
      this.live.clear();
      return;
    }
    await Promise.allSettled([...this.live.keys()].map((runId) => this.closeRun(runId)));
  }

  /**
   * The instance serving `runId` for `principal`, or why there is none. Another
   * principal's run answers exactly as a run that does not exist.
   */
  private async liveInstance(runId: string, principal: Principal): Promise<LiveInstance> {
    const unknown = new NotFoundError("instance", runId, `Unknown run_id: ${runId}`);
    const live = this.live.get(runId);
    if (live) {
      if (mayActOn(principal, live.principal)) return live;
      throw unknown;
    }
    const gone = this.expired.get(runId);
    if (gone && mayActOn(principal, gone.principal)) throw new InstanceGoneError(runId, gone.reason);
    const record = await this.options.store.get(runId);
    if (!record || !mayActOn(principal, record.principal)) throw unknown;
    if (record.owner !== this.options.serviceId) throw this.elsewhere(record);
    if (record.state === "starting")
      throw new NotFoundError("instance", runId, `run_id ${runId} is still starting`);
    throw new InstanceGoneError(runId, "its runtime did not answer when the service started");
  }

  /** A run another service (sharing the store) serves: the client must ask that one. */
  private elsewhere(record: InstanceRecord): NotFoundError {
    return new NotFoundError(
      "instance",
      record.runId,
      `run_id ${record.runId} belongs to service ${record.owner}: send its commands there`,
    );
  }

  /**
   * A command failed to run: when the instance itself died, that is what the client
   * hears (and the instance is released), not the command's failure.
   */
  private async goneOr(runId: string, instance: Instance, err: unknown): Promise<unknown> {
    const alive = await instance.isRunning().catch(() => false);
    if (alive) return err;
    const reason = `it stopped running (${err instanceof Error ? err.message : String(err)})`;
    const principal = this.live.get(runId)?.principal ?? "";
    await this.closeRun(runId).catch(() => undefined);
    this.remember(runId, principal, reason);
    return new InstanceGoneError(runId, reason);
  }

  private remember(runId: string, principal: string, reason: string): void {
    this.expired.set(runId, { reason, principal });
    if (this.expired.size > EXPIRED_MEMORY) {
      const oldest = this.expired.keys().next().value;
      if (oldest !== undefined) this.expired.delete(oldest);
    }
  }

  private runtimeFor(type: string): Runtime {
    const runtime = this.options.runtimes[type];
    if (typeof runtime === "object") return runtime;
    throw new UnsupportedError(
      `container_type ${type} is not available on this server: ${runtime ?? "no runtime serves it"}`,
    );
  }
}

/**
 * The shell text of a command: grouped so stderr joins stdout in the order it was
 * written, after entering `cwd` (relative to the instance's working folder) inside the
 * instance. A `cwd` that cannot be entered prints `marker` alone and exits
 * {@link CWD_MISSING}, so the client hears a 400 rather than the command's failure.
 */
function shellCommand(cmd: string, cwd: string | undefined, marker: string): string {
  const body = `{ ${cmd}\n} 2>&1`;
  if (cwd === undefined) return body;
  return `cd -- ${shellQuote(cwd)} 2>/dev/null || { printf %s ${marker}; exit ${CWD_MISSING}; }\n${body}`;
}

/** Container types whose sandbox has its own folder a relative `cwd` is taken from. */
const CONFINED_TYPES: ReadonlySet<string> = new Set(["bubblewrap", "apptainer", "singularity", "enroot"]);

/**
 * A working folder the instance's type can take: inside a confined sandbox it may be
 * relative to the sandbox's folder (the runtime keeps it inside); a container's or a host
 * shell's is an absolute path.
 */
function checkWorkdir(type: string, cwd: string | undefined): void {
  if (cwd === undefined || cwd.startsWith("/") || CONFINED_TYPES.has(type)) return;
  throw new ValidationError(
    "environment_config.cwd",
    `a ${type} instance's cwd is an absolute path (relative paths are for confined sandboxes)`,
  );
}
