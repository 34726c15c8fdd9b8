import { z } from "zod";
import type { Database } from "../store/database.js";
import { timerDelay } from "../util/deadline.js";

/** The topic every service process sharing the database announces new work on. */
const TOPIC = "queue_work";

/**
 * How long new work waits to be announced to the other processes, with whatever else
 * comes meanwhile: one NOTIFY (a transaction of its own) per batch, not per submit.
 */
export const ANNOUNCE_BATCH_MS = 10;

/** An announcement from another process: colony, executor type, how many to wake (-1: all). */
const announcement = z.tuple([z.string(), z.string(), z.number().int().min(-1)]);

/**
 * Executors waiting in a long-poll assign, by colony and executor type, in every service
 * process sharing one database. New work wakes one waiter, not all of them (no thundering
 * herd), of this process first; what it could not wake here is announced to the others
 * (PostgreSQL: NOTIFY; SQLite: they notice the commit, see `SqliteChangeWatcher`, and let
 * all their waiters look again). No wake-up is lost: one that comes between an
 * executor's look at the queue and its wait makes the wait return at once (each key
 * counts its wake-ups; a waiter says which count it saw).
 */
export class AssignWaiters {
  private readonly queues = new Map<string, Array<(woken: boolean) => void>>();
  private readonly wakeups = new Map<string, number>();
  /** Wake-ups of every key at once (`wakeEveryone`), counted in each key's. */
  private everyone = 0;
  private unsubscribe: (() => void) | undefined;
  /** Work not yet announced to the other processes: how many to wake, by key. */
  private readonly unannounced = new Map<string, [string, string, number]>();
  private announceTimer: NodeJS.Timeout | undefined;

  private constructor(private readonly db: Database) {}

  /** Waiters of this process, listening to the other processes' announcements. */
  static async start(db: Database): Promise<AssignWaiters> {
    const waiters = new AssignWaiters(db);
    waiters.unsubscribe = await db.subscribe(TOPIC, (message) => waiters.heard(message));
    return waiters;
  }

  /** How many wake-ups the colony and type have had: read it before looking at the queue. */
  seen(colonyname: string, executortype: string): number {
    return (this.wakeups.get(keyOf(colonyname, executortype)) ?? 0) + this.everyone;
  }

  /**
   * Resolves true when woken (at once when a wake-up came since `seen`), false after
   * `timeoutMs`, when closed, or when `signal` aborts. A waiter that leaves is taken out
   * of the line at once, so a wake-up never goes to an executor that is gone.
   */
  wait(
    colonyname: string,
    executortype: string,
    options: { timeoutMs: number; seen: number; signal?: AbortSignal | undefined },
  ): Promise<boolean> {
    const { seen, signal } = options;
    if (this.seen(colonyname, executortype) !== seen) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    const key = keyOf(colonyname, executortype);
    return new Promise((resolve) => {
      const queue = this.queues.get(key) ?? [];
      this.queues.set(key, queue);
      const leave = () => {
        const at = queue.indexOf(waiter);
        if (at >= 0) queue.splice(at, 1);
        if (queue.length === 0 && this.queues.get(key) === queue) this.queues.delete(key);
        finish(false);
      };
      const finish = (woken: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", leave);
        resolve(woken);
      };
      const waiter = (woken: boolean) => finish(woken);
      const timer = setTimeout(leave, timerDelay(options.timeoutMs));
      signal?.addEventListener("abort", leave, { once: true });
      queue.push(waiter);
    });
  }

  /**
   * Wakes up to `count` waiters (Infinity: all) of the colony and type: here first, the
   * longest-waiting first; the rest are announced to the other processes.
   */
  notify(colonyname: string, executortype: string, count: number): void {
    const woken = this.wake(colonyname, executortype, count);
    if (woken >= count) return;
    const key = keyOf(colonyname, executortype);
    const before = this.unannounced.get(key)?.[2] ?? 0;
    const left = Number.isFinite(count) && before >= 0 ? before + count - woken : -1;
    this.unannounced.set(key, [colonyname, executortype, left]);
    this.announceTimer ??= setTimeout(() => this.announce(), ANNOUNCE_BATCH_MS);
  }

  /** Ends every wait and stops listening (idempotent); what was not yet announced is announced. */
  close(): void {
    this.announce();
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const queue of this.queues.values()) for (const waiter of queue.splice(0)) waiter(false);
    this.queues.clear();
  }

  /** Wakes up to `count` waiters of this process; how many it woke. */
  private wake(colonyname: string, executortype: string, count: number): number {
    const key = keyOf(colonyname, executortype);
    this.wakeups.set(key, (this.wakeups.get(key) ?? 0) + 1);
    const queue = this.queues.get(key);
    let woken = 0;
    for (; woken < count && queue?.length; woken++) queue.shift()?.(true);
    return woken;
  }

  /** Tells the other processes the work not yet announced: one message per colony and type (names are short). */
  private announce(): void {
    clearTimeout(this.announceTimer);
    this.announceTimer = undefined;
    for (const entry of this.unannounced.values()) this.db.publish(TOPIC, JSON.stringify(entry));
    this.unannounced.clear();
  }

  private heard(message: string | undefined): void {
    const parsed = message === undefined ? undefined : announcement.safeParse(safeJson(message)).data;
    // work may have come that no announcement names: every waiter looks again
    if (!parsed) return this.wakeEveryone();
    const [colonyname, executortype, count] = parsed;
    this.wake(colonyname, executortype, count < 0 ? Number.POSITIVE_INFINITY : count);
  }

  private wakeEveryone(): void {
    this.everyone++;
    for (const queue of this.queues.values()) for (const waiter of queue.splice(0)) waiter(true);
    this.queues.clear();
  }
}

function keyOf(colonyname: string, executortype: string): string {
  return `${colonyname}\u0000${executortype}`;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
