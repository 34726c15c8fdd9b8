/** Exit code reported for a command stopped by its timeout, as coreutils `timeout` does. */
export const TIMEOUT_EXIT_CODE = 124;

/** How long a command's output must stay quiet, once its shell exited, before the call ends. */
export const QUIET_AFTER_EXIT_MS = 200;

/**
 * The longest a call waits for a command's output once its shell exited: a process it
 * left in the background (`cmd &`) may hold the output open for ever. Docker's engine
 * gives an exec's output the same 2 s.
 */
export const MAX_WAIT_AFTER_EXIT_MS = 2_000;

/** Past a deadline: the longest the kill of a command's processes may take... */
export const KILL_WAIT_MS = 700;

/** ...and the longest their output then gets to close, so the call ends within a second. */
export const SETTLE_AFTER_KILL_MS = 200;

/**
 * When the call running one command is over. Normally when the command's output closes;
 * but what the command left in the background may hold it open. So once the shell has
 * exited, the call ends when the output has been quiet for `QUIET_AFTER_EXIT_MS`, and at
 * the latest `MAX_WAIT_AFTER_EXIT_MS` after the exit; and `limit(ms)` ends it at the
 * latest `ms` from now (after a deadline's kill), whatever is still open.
 */
export class CommandEnd {
  /** Resolves once, when the call is over. */
  readonly ended: Promise<void>;
  private resolve!: () => void;
  private done = false;
  private lastOutput = Date.now();
  private quietTimer: NodeJS.Timeout | undefined;
  private limitTimer: NodeJS.Timeout | undefined;
  private limitAt = Number.POSITIVE_INFINITY;
  private exitedAt: number | undefined;
  private cut = false;

  constructor() {
    this.ended = new Promise((resolve) => (this.resolve = resolve));
  }

  /** Output arrived. */
  output(): void {
    this.lastOutput = Date.now();
  }

  /** The command's shell exited (its output may stay open). */
  exited(): void {
    if (this.exitedAt !== undefined || this.done) return;
    this.exitedAt = Date.now();
    this.limit(MAX_WAIT_AFTER_EXIT_MS);
    this.watchQuiet(QUIET_AFTER_EXIT_MS);
  }

  /** The output closed: nothing more can come. */
  closed(): void {
    this.finish();
  }

  /** Ends the call at the latest `ms` from now (an earlier limit stands). */
  limit(ms: number): void {
    const at = Date.now() + ms;
    if (this.done || at >= this.limitAt) return;
    this.limitAt = at;
    clearTimeout(this.limitTimer);
    this.limitTimer = setTimeout(() => {
      // still flowing: some output after the exit was not waited for
      this.cut = this.exitedAt !== undefined && Date.now() - this.lastOutput < QUIET_AFTER_EXIT_MS;
      this.finish();
    }, ms);
  }

  /**
   * Whether the call ended while output was still arriving after the shell's exit (a
   * background process writing on): what it wrote later is not in the result.
   */
  get cutShort(): boolean {
    return this.cut;
  }

  private watchQuiet(ms: number): void {
    this.quietTimer = setTimeout(
      // After the I/O phase: output already waiting in a pipe is read (and counted) first,
      // even when the event loop was late.
      () =>
        setImmediate(() => {
          const idle = Date.now() - this.lastOutput;
          if (idle >= QUIET_AFTER_EXIT_MS) this.finish();
          else if (!this.done) this.watchQuiet(QUIET_AFTER_EXIT_MS - idle);
        }),
      ms,
    );
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.quietTimer);
    clearTimeout(this.limitTimer);
    this.resolve();
  }
}

/** Waits for `promise` to settle, at most `ms`; never throws. */
export async function atMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => undefined),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
}
