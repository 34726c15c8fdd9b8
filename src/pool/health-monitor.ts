import { EventEmitter } from "node:events";
import { logger } from "../logger.js";
import type { PoolMember } from "./pool-member.js";

const CHECK_INTERVAL_MS = 1_000;
const PROBE_TIMEOUT_MS = 1_000;
/** Consecutive failed probes before a replica leaves the rotation (a failed connection evicts at once). */
const FAILED_PROBES_TO_EVICT = 2;

/**
 * Watches the replicas of a pool: engine events (exit, start) act at once; a `/health`
 * probe every second catches what events do not (a hung server) and brings evicted
 * replicas back when they answer again. Nothing is evicted for good: an unhealthy
 * replica keeps being probed, re-resolved (its address may have changed) and, when it
 * stopped outside affinetes, started again.
 */
export class HealthMonitor extends EventEmitter {
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribes: Array<() => void> = [];
  private readonly failedProbes = new Map<PoolMember, number>();
  private readonly checking = new Set<PoolMember>();
  private stopped = false;

  constructor(private readonly members: readonly PoolMember[]) {
    super();
    this.setMaxListeners(0); // one listener per call waiting for a replica
    for (const member of members) {
      this.unsubscribes.push(
        member.instance.watch((event) =>
          event === "exited" ? this.evict(member, "exited") : void this.check(member),
        ),
      );
    }
    this.timer = setInterval(() => members.forEach((m) => void this.check(m)), CHECK_INTERVAL_MS);
    this.timer.unref(); // health checks never keep the process alive
  }

  /** A call could not connect to the replica: out of the rotation until it answers again. */
  suspect(member: PoolMember): void {
    this.evict(member, "connection failed");
    void this.check(member);
  }

  /** Resolves when a replica that `among` accepts is healthy, or rejects when `signal` fires first. */
  async anyHealthy(among: (member: PoolMember) => boolean, signal: AbortSignal): Promise<void> {
    if (this.members.some((m) => m.healthy && among(m))) return;
    if (signal.aborted) throw signal.reason;
    if (this.stopped) throw new Error("the pool is closed");
    await new Promise<void>((resolve, reject) => {
      const onHealthy = (member: PoolMember) => {
        if (!among(member)) return;
        this.off("healthy", onHealthy);
        this.off("stopped", onStop);
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        this.off("healthy", onHealthy);
        this.off("stopped", onStop);
        reject(signal.reason);
      };
      const onStop = () => {
        this.off("healthy", onHealthy);
        signal.removeEventListener("abort", onAbort);
        reject(new Error("the pool is closed"));
      };
      this.on("healthy", onHealthy);
      this.once("stopped", onStop);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    for (const unsubscribe of this.unsubscribes) unsubscribe();
    this.emit("stopped"); // calls waiting for a healthy replica fail now, not at their timeout
    this.removeAllListeners();
  }

  private evict(member: PoolMember, reason: string): void {
    if (!member.healthy || this.stopped) return;
    member.healthy = false;
    logger.info({ instance: member.instance.name, reason }, "instance left the rotation");
    this.emit("unhealthy", member);
  }

  private admit(member: PoolMember): void {
    this.failedProbes.delete(member);
    if (member.healthy || this.stopped) return;
    member.healthy = true;
    logger.info({ instance: member.instance.name }, "instance rejoined the rotation");
    this.emit("healthy", member);
  }

  /** One probe; concurrent checks of the same replica collapse into one. */
  private async check(member: PoolMember): Promise<void> {
    if (this.stopped || this.checking.has(member)) return;
    this.checking.add(member);
    try {
      if (!member.healthy) {
        await member.instance.revive();
        await member.refresh();
      }
      if (await member.probe(PROBE_TIMEOUT_MS)) {
        this.admit(member);
      } else {
        const failures = (this.failedProbes.get(member) ?? 0) + 1;
        this.failedProbes.set(member, failures);
        if (failures >= FAILED_PROBES_TO_EVICT) this.evict(member, "health probe failed");
      }
    } catch (err) {
      logger.debug({ instance: member.instance.name, err: (err as Error).message }, "health check failed");
    } finally {
      this.checking.delete(member);
    }
  }
}
