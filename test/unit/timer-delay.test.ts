import { afterEach, describe, expect, it, vi } from "vitest";
import { CommandEnd, MAX_WAIT_AFTER_EXIT_MS, QUIET_AFTER_EXIT_MS } from "../../src/util/command-end.js";
import { Deadline, MAX_TIMER_DELAY_MS, timeoutSignal, timerDelay } from "../../src/util/deadline.js";

describe("timerDelay: a caller's duration as a timer's delay", () => {
  it("holds huge values as 'effectively never' instead of Node's overflow to 1 ms", () => {
    expect(timerDelay(1e12)).toBe(MAX_TIMER_DELAY_MS);
    expect(timerDelay(2 ** 31)).toBe(MAX_TIMER_DELAY_MS);
    expect(timerDelay(Number.POSITIVE_INFINITY)).toBe(MAX_TIMER_DELAY_MS);
    expect(timerDelay(Number.NaN)).toBe(MAX_TIMER_DELAY_MS);
    expect(timerDelay(-5)).toBe(0);
    expect(timerDelay(1.2)).toBe(2);
    expect(timerDelay(1000)).toBe(1000);
  });

  it("keeps a timer, an AbortSignal and a Deadline of 1e12 ms from firing at once", async () => {
    let fired = false;
    const timer = setTimeout(() => (fired = true), timerDelay(1e12));
    const signal = timeoutSignal(1e12); // AbortSignal.timeout itself throws past 2^32 - 1
    const deadline = new Deadline("test", { timeoutMs: 1e12 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    clearTimeout(timer);
    expect(fired).toBe(false);
    expect(signal.aborted).toBe(false);
    expect(deadline.fired).toBe(false);
  });
});

describe("CommandEnd: when a command's call is over", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function watch(end: CommandEnd): () => boolean {
    let over = false;
    void end.ended.then(() => (over = true));
    return () => over;
  }

  it("ends when the output closes", async () => {
    const end = new CommandEnd();
    const over = watch(end);
    end.closed();
    await Promise.resolve();
    expect(over()).toBe(true);
  });

  it("once the shell exited, ends when the output has been quiet, or at the latest after the wait's cap", async () => {
    vi.useFakeTimers();
    const quiet = new CommandEnd();
    const quietOver = watch(quiet);
    quiet.exited();
    await vi.advanceTimersByTimeAsync(QUIET_AFTER_EXIT_MS - 50);
    quiet.output();
    await vi.advanceTimersByTimeAsync(QUIET_AFTER_EXIT_MS - 50);
    expect(quietOver()).toBe(false); // output came: the quiet starts again
    await vi.advanceTimersByTimeAsync(100);
    expect(quietOver()).toBe(true);
    expect(quiet.cutShort).toBe(false);

    const chatty = new CommandEnd();
    const chattyOver = watch(chatty);
    chatty.exited();
    for (let t = 0; t < MAX_WAIT_AFTER_EXIT_MS - 100; t += 50) {
      chatty.output();
      await vi.advanceTimersByTimeAsync(50);
    }
    expect(chattyOver()).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    expect(chattyOver()).toBe(true); // a background process writing on does not hold the call
    expect(chatty.cutShort).toBe(true); // and the result says output was left out
  });

  it("limit() ends it whatever is still open; an earlier limit stands", async () => {
    vi.useFakeTimers();
    const end = new CommandEnd();
    const over = watch(end);
    end.limit(100);
    end.limit(5_000);
    await vi.advanceTimersByTimeAsync(100);
    expect(over()).toBe(true);
  });
});
