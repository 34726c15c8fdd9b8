import { CallAbortedError, CallTimeoutError, ConnectionError, NoHealthyInstanceError } from "../errors.js";
import type { ServingInstance } from "../runtime/instance.js";
import type { CallOptions, MethodInfo } from "../transport/method-client.js";
import { HealthMonitor } from "./health-monitor.js";
import type { LoadBalancer } from "./load-balancer.js";
import { PoolMember } from "./pool-member.js";
import type { InstanceStats } from "./pool-member.js";
import { timeoutSignal } from "../util/deadline.js";

/** What `getStats()` reports of an environment. */
export interface PoolStats {
  totalInstances: number;
  healthyInstances: number;
  totalRequests: number;
  loadBalance: string;
  instances: InstanceStats[];
}

/** Options of one call through a pool. */
export interface PoolCallOptions extends CallOptions {
  /**
   * The method may safely run twice: a call whose connection broke after the request was
   * sent is retried on another replica. Without it such a call fails (it may have run).
   */
  idempotent?: boolean;
}

/**
 * The replicas of one environment: picks one per call with the load balancer, keeps
 * unhealthy ones out of the rotation, and moves a call to another replica when its
 * connection failed before the request was sent. One replica is a pool of one.
 */
export class InstancePool {
  private readonly members: PoolMember[];
  private readonly monitor: HealthMonitor;

  constructor(
    instances: readonly ServingInstance[],
    private readonly balancer: LoadBalancer,
  ) {
    this.members = instances.map((instance, index) => new PoolMember(index, instance));
    this.monitor = new HealthMonitor(this.members);
  }

  get instances(): readonly ServingInstance[] {
    return this.members.map((m) => m.instance);
  }

  async call(
    method: string,
    args: unknown[],
    kwargs: Record<string, unknown>,
    options: PoolCallOptions & { timeoutMs: number },
  ): Promise<unknown> {
    const deadline = Date.now() + options.timeoutMs;
    const tried = new Set<PoolMember>();
    let lastError: ConnectionError | undefined;
    for (;;) {
      const member = await this.pick(method, tried, deadline, options.signal, lastError);
      try {
        return await member.call(method, args, kwargs, {
          ...options,
          timeoutMs: Math.max(1, deadline - Date.now()),
        });
      } catch (err) {
        if (err instanceof CallTimeoutError && err.side === "client") {
          throw new CallTimeoutError(method, "client", options.timeoutMs); // the caller's bound, not what was left
        }
        if (!(err instanceof ConnectionError)) throw err;
        this.monitor.suspect(member);
        if (err.delivered && !options.idempotent) {
          throw err.withHint("not retried, as the call is not marked idempotent");
        }
        tried.add(member);
        lastError = err;
      }
    }
  }

  async listMethods(options: CallOptions): Promise<MethodInfo[]> {
    const member = this.members.find((m) => m.healthy) ?? this.members[0];
    if (!member) return [];
    return member.listMethods(options);
  }

  getStats(): PoolStats {
    const instances = this.members.map((m) => m.stats());
    return {
      totalInstances: instances.length,
      healthyInstances: instances.filter((i) => i.healthy).length,
      totalRequests: instances.reduce((sum, i) => sum + i.requests, 0),
      loadBalance: this.balancer.name,
      instances,
    };
  }

  /** Stops watching and closes connections; `stopInstances` also stops the replicas. */
  async close(stopInstances: boolean): Promise<void> {
    this.monitor.stop();
    await Promise.all(this.members.map((m) => m.close()));
    if (stopInstances) await this.stopInstances();
    else await Promise.all(this.members.map((m) => m.instance.detach()));
  }

  async stopInstances(): Promise<void> {
    const results = await Promise.allSettled(this.members.map((m) => m.instance.stop()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  /**
   * A healthy replica not yet tried for this call. When none is healthy, waits (within
   * the call's time) for one to come back, as after a crash and restart.
   */
  private async pick(
    method: string,
    tried: ReadonlySet<PoolMember>,
    deadline: number,
    signal: AbortSignal | undefined,
    lastError: ConnectionError | undefined,
  ): Promise<PoolMember> {
    for (;;) {
      const candidates = this.members.filter((m) => m.healthy && !tried.has(m));
      if (candidates.length) return this.balancer.pick(candidates);
      if (lastError && this.members.every((m) => tried.has(m))) {
        throw lastError.withHint(`every replica (${this.members.length}) was tried`);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new NoHealthyInstanceError(method, this.members.length);
      const timeout = timeoutSignal(remaining);
      try {
        await this.monitor.anyHealthy(
          (m) => !tried.has(m),
          signal ? AbortSignal.any([signal, timeout]) : timeout,
        );
      } catch {
        if (signal?.aborted) throw new CallAbortedError(method, { cause: signal.reason });
        if (lastError) throw lastError;
        throw new NoHealthyInstanceError(method, this.members.length);
      }
    }
  }
}
