import { AbortedError, InstanceStartError } from "../../errors.js";
import type { Deadline } from "../../util/deadline.js";
import type { ReadinessTarget } from "./readiness-strategy.js";

const FIRST_INTERVAL_MS = 5;
/** While a server is most likely to come up, poll often: a refused connection costs next to nothing. */
const EARLY_PHASE_MS = 3_000;
const EARLY_MAX_INTERVAL_MS = 25;
const LATE_INTERVAL_MS = 100;
const FAILURE_CHECK_EVERY_MS = 250;

/** One look at the instance: undefined when ready, else what is still missing. */
export type ReadinessProbe = (signal: AbortSignal) => Promise<string | undefined>;

/**
 * Polls `probe` at a short, slowly growing interval until it reports ready. Every 250 ms
 * the target's `failure` is asked too, so an instance
 * that exited fails the start at once, with its logs; the deadline ends it with the last
 * problem seen.
 */
export async function pollReadiness(target: ReadinessTarget, probe: ReadinessProbe): Promise<void> {
  const { deadline, instance } = target;
  let interval = FIRST_INTERVAL_MS;
  const started = Date.now();
  let lastFailureCheck = Date.now();
  let lastProblem = "no answer yet";
  for (;;) {
    if (deadline.fired) {
      const cause = deadline.error();
      if (cause instanceof AbortedError) throw cause;
      throw new InstanceStartError(instance.name, `not ready: ${lastProblem}`, await startLogs(target), {
        cause,
      });
    }
    try {
      const problem = await probe(attemptSignal(deadline));
      if (problem === undefined) return;
      lastProblem = problem;
    } catch (err) {
      if (err instanceof InstanceStartError) throw err;
      // an attempt the deadline cut short says nothing of the instance: keep the last problem
      if (!deadline.fired) lastProblem = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() - lastFailureCheck >= FAILURE_CHECK_EVERY_MS) {
      lastFailureCheck = Date.now();
      await failIfFailed(target);
    }
    await deadline.sleep(interval).catch(() => undefined); // the loop reports the deadline with the last problem
    interval =
      Date.now() - started < EARLY_PHASE_MS
        ? Math.min(EARLY_MAX_INTERVAL_MS, Math.ceil(interval * 1.5))
        : LATE_INTERVAL_MS;
  }
}

/** Throws `InstanceStartError` with the instance's logs when it can no longer become ready. */
export async function failIfFailed(target: ReadinessTarget): Promise<void> {
  const failure = await target.failure();
  if (failure) throw new InstanceStartError(target.instance.name, failure, await startLogs(target));
}

/** The end of the instance's output, attached to a start error; empty when it cannot be read. */
export async function startLogs(target: ReadinessTarget): Promise<string> {
  try {
    return await target.instance.logs({ tail: 50 });
  } catch {
    return "";
  }
}

function attemptSignal(deadline: Deadline): AbortSignal {
  // Short: an address with nothing behind it (a container between restarts) must not stall the loop.
  const attempt = AbortSignal.timeout(1_000);
  return deadline.signal ? AbortSignal.any([deadline.signal, attempt]) : attempt;
}
