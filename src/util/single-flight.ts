import type { Deadline } from "./deadline.js";

/** What a shared task receives: its own cancellation, and where its progress goes. */
export type FlightTask<T> = (signal: AbortSignal, emit: (line: string) => void) => Promise<T>;

interface Flight<T> {
  promise: Promise<T>;
  controller: AbortController;
  listeners: Set<(line: string) => void>;
  waiters: number;
  settled: boolean;
}

/**
 * One task per key at a time: callers of a key that is already running wait for that
 * run instead of starting another, and all of them receive its progress. Each caller
 * keeps its own deadline; the task is cancelled only when every caller has given up.
 */
export class SingleFlight<T> {
  private readonly flights = new Map<string, Flight<T>>();

  /** Runs `task` for `key`, or joins the run already under way. */
  async join(
    key: string,
    task: FlightTask<T>,
    waiter: { deadline: Deadline; onProgress?: ((line: string) => void) | undefined },
  ): Promise<T> {
    waiter.deadline.check();
    const flight = this.flights.get(key) ?? this.start(key, task);
    const listener = (line: string) => waiter.onProgress?.(line);
    flight.listeners.add(listener);
    flight.waiters++;
    try {
      return await untilDeadline(flight.promise, waiter.deadline);
    } finally {
      flight.listeners.delete(listener);
      flight.waiters--;
      if (flight.waiters === 0 && !flight.settled) {
        if (this.flights.get(key) === flight) this.flights.delete(key);
        flight.controller.abort();
      }
    }
  }

  private start(key: string, task: FlightTask<T>): Flight<T> {
    const controller = new AbortController();
    const listeners = new Set<(line: string) => void>();
    const emit = (line: string) => {
      for (const listener of listeners) listener(line);
    };
    const flight: Flight<T> = {
      promise: task(controller.signal, emit),
      controller,
      listeners,
      waiters: 0,
      settled: false,
    };
    const done = () => {
      flight.settled = true;
      if (this.flights.get(key) === flight) this.flights.delete(key);
    };
    flight.promise.then(done, done); // also keeps a run nobody waits for any more from going unhandled
    this.flights.set(key, flight);
    return flight;
  }
}

/** `promise`, or the deadline's typed error as soon as it fires. */
function untilDeadline<T>(promise: Promise<T>, deadline: Deadline): Promise<T> {
  const signal = deadline.signal;
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(deadline.error(signal.reason));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
