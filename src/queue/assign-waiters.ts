import { timerDelay } from "../util/deadline.js";

/**
 * Executors of this process waiting in a long-poll assign, by colony and executor type.
 * A new process wakes one waiter, not all of them (no thundering herd). No wake-up is
 * lost: one that comes between an executor's look at the queue and its wait makes the
 * wait return at once (each key counts its wake-ups; a waiter says which count it saw).
 */
export class AssignWaiters {
  private readonly queues = new Map<string, Array<(woken: boolean) => void>>();
  private readonly wakeups = new Map<string, number>();
  /** Wake-ups of every key at once (`wakeEveryone`), counted in each key's. */
  private everyone = 0;

  /** How many wake-ups the colony and type have had: read it before looking at the queue. */
  seen(colonyname: string, executortype: string): number {
    return (this.wakeups.get(keyOf(colonyname, executortype)) ?? 0) + this.everyone;
  }

  /**
   * Resolves true when woken (at once when a wake-up came since `seen`), false after
   * `ms`, when cancelled, or when `signal` aborts. A waiter that leaves is taken out of
   * the line at once, so a wake-up never goes to an executor that is gone.
   */
  wait(
    colonyname: string,
    executortype: string,
    ms: number,
    seen: number,
    signal?: AbortSignal,
  ): Promise<boolean> {
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
      const timer = setTimeout(leave, timerDelay(ms));
      signal?.addEventListener("abort", leave, { once: true });
      queue.push(waiter);
    });
  }

  /** Wakes up to `count` waiters of the colony and type, the longest-waiting first; how many it woke. */
  wake(colonyname: string, executortype: string, count: number): number {
    const key = keyOf(colonyname, executortype);
    this.wakeups.set(key, (this.wakeups.get(key) ?? 0) + 1);
    const queue = this.queues.get(key);
    let woken = 0;
    for (; woken < count && queue?.length; woken++) queue.shift()?.(true);
    return woken;
  }

  /** Wakes every waiter of every key: work may have come that no wake-up named. */
  wakeEveryone(): void {
    this.everyone++;
    for (const queue of this.queues.values()) for (const waiter of queue.splice(0)) waiter(true);
    this.queues.clear();
  }

  /** Ends every wait (the server stops). */
  cancelAll(): void {
    for (const queue of this.queues.values()) for (const waiter of queue.splice(0)) waiter(false);
    this.queues.clear();
  }
}

function keyOf(colonyname: string, executortype: string): string {
  return `${colonyname}\u0000${executortype}`;
}
