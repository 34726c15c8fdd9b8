import { setTimeout as sleepTimer } from "node:timers/promises";
import { AbortedError, AffinetesError, TimeoutError } from "../errors.js";

/**
 * The longest delay a Node timer holds: 2^31 - 1 ms (about 24.8 days). Node fires a
 * longer one after 1 ms (and `AbortSignal.timeout` refuses past 2^32 - 1).
 */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/**
 * A caller-given duration as a timer's delay. Every timer whose delay a user can choose
 * goes through this: a huge value (`timeout: 1e12`, `Infinity`) then means "effectively
 * never" (the longest delay a timer holds) instead of overflowing into "now"; a negative
 * one means now, and NaN (no usable bound) never.
 */
export function timerDelay(ms: number): number {
  if (Number.isNaN(ms)) return MAX_TIMER_DELAY_MS;
  return Math.min(MAX_TIMER_DELAY_MS, Math.max(0, Math.ceil(ms)));
}

/** `AbortSignal.timeout` for any caller-given duration (see `timerDelay`). */
export function timeoutSignal(ms: number): AbortSignal {
  return AbortSignal.timeout(timerDelay(ms));
}

/** Options every long operation accepts. */
export interface OperationOptions {
  /** Upper bound for the whole operation, in milliseconds. */
  timeoutMs?: number;
  /** Cancels the operation; it then rejects with `AbortedError`. */
  signal?: AbortSignal;
}

/**
 * A deadline for one operation: one signal that fires on the caller's abort or on
 * the timeout, and a translation of the resulting failure into a typed error.
 */
export class Deadline {
  readonly signal: AbortSignal | undefined;
  private readonly timeoutSignal: AbortSignal | undefined;

  constructor(
    private readonly what: string,
    private readonly options: OperationOptions = {},
  ) {
    this.timeoutSignal = options.timeoutMs !== undefined ? timeoutSignal(options.timeoutMs) : undefined;
    const signals = [options.signal, this.timeoutSignal].filter((s): s is AbortSignal => s !== undefined);
    this.signal = signals.length <= 1 ? signals[0] : AbortSignal.any(signals);
  }

  /** Throws the typed error if the deadline has passed or the caller aborted. */
  check(): void {
    if (this.signal?.aborted) throw this.error();
  }

  /** The typed error for a fired deadline: `AbortedError` or `TimeoutError`. */
  error(cause?: unknown): AffinetesError {
    if (this.options.signal?.aborted)
      return new AbortedError(this.what, { cause: this.options.signal.reason });
    return new TimeoutError(this.what, this.options.timeoutMs ?? 0, { cause });
  }

  /** Whether the deadline itself (not some other failure) ended the operation. */
  get fired(): boolean {
    return this.signal?.aborted ?? false;
  }

  /** Runs `fn`, translating an abort caused by this deadline into the typed error. */
  async run<T>(fn: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    this.check();
    try {
      return await fn(this.signal);
    } catch (err) {
      if (this.fired && !(err instanceof AffinetesError)) throw this.error(err);
      throw err;
    }
  }

  /** Sleeps `ms`, waking early (with the typed error) when the deadline fires. */
  async sleep(ms: number): Promise<void> {
    try {
      await sleepTimer(timerDelay(ms), undefined, { signal: this.signal });
    } catch (err) {
      throw this.fired ? this.error(err) : err;
    }
  }
}
