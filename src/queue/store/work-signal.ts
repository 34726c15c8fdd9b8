import { z } from "zod";
import type { Database } from "../../store/database.js";
import { AssignWaiters } from "../assign-waiters.js";

/** The topic every service process sharing the database announces new work on. */
const TOPIC = "queue_work";

/** An announcement from another process: colony, executor type, how many to wake (-1: all). */
const announcement = z.tuple([z.string(), z.string(), z.number().int().min(-1)]);

/**
 * The long-poll wait for work of every service process sharing one database. New work
 * wakes waiters of this process first; what it could not wake here is announced to the
 * others (PostgreSQL: NOTIFY; SQLite: the other processes notice the commit, see
 * `SqliteChangeWatcher`, and let all their waiters look again).
 */
export class WorkSignal {
  private readonly waiters = new AssignWaiters();
  private unsubscribe: (() => void) | undefined;

  private constructor(private readonly db: Database) {}

  /** Listens to the other processes' announcements. */
  static async start(db: Database): Promise<WorkSignal> {
    const signal = new WorkSignal(db);
    signal.unsubscribe = await db.subscribe(TOPIC, (message) => signal.heard(message));
    return signal;
  }

  seen(colonyname: string, executortype: string): number {
    return this.waiters.seen(colonyname, executortype);
  }

  wait(
    colonyname: string,
    executortype: string,
    options: { timeoutMs: number; seen: number; signal?: AbortSignal | undefined },
  ): Promise<boolean> {
    return this.waiters.wait(colonyname, executortype, options.timeoutMs, options.seen, options.signal);
  }

  notify(colonyname: string, executortype: string, count: number): void {
    const woken = this.waiters.wake(colonyname, executortype, count);
    if (woken >= count) return;
    const left = Number.isFinite(count) ? count - woken : -1;
    this.db.publish(TOPIC, JSON.stringify([colonyname, executortype, left]));
  }

  /** Ends every wait and stops listening (idempotent). */
  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.waiters.cancelAll();
  }

  private heard(message: string | undefined): void {
    if (message === undefined) return this.waiters.wakeEveryone();
    let parsed: z.infer<typeof announcement>;
    try {
      parsed = announcement.parse(JSON.parse(message));
    } catch {
      return this.waiters.wakeEveryone(); // not ours to read: look again rather than miss work
    }
    const [colonyname, executortype, count] = parsed;
    this.waiters.wake(colonyname, executortype, count < 0 ? Number.POSITIVE_INFINITY : count);
  }
}
