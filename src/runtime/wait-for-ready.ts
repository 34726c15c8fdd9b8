import { AbortedError, InstanceStartError } from "../errors.js";
import { HttpClient } from "../transport/http-client.js";
import type { Deadline } from "../util/deadline.js";
import type { EnvType } from "./instance.js";

export interface ReadinessProbe {
  instance: string;
  http: HttpClient;
  envType: EnvType;
  deadline: Deadline;
  /** Returns why the instance can never become ready (it exited), or undefined while it may. */
  failure: () => Promise<string | undefined>;
  /** The instance's output, attached to the error when it does not become ready. */
  logs: () => Promise<string>;
}

const FIRST_INTERVAL_MS = 5;
/** While a server is most likely to come up, poll often: a refused connection costs next to nothing. */
const EARLY_PHASE_MS = 3_000;
const EARLY_MAX_INTERVAL_MS = 25;
const LATE_INTERVAL_MS = 100;
const FAILURE_CHECK_EVERY_MS = 250;

/**
 * Polls `GET /health` at a short, slowly growing interval until the server answers.
 * A function-based server must answer 200; an HTTP-based app is up once it answers at
 * all (it may have no /health route). Fails fast when the instance exits.
 */
export async function waitForReady(probe: ReadinessProbe): Promise<void> {
  let interval = FIRST_INTERVAL_MS;
  const started = Date.now();
  let lastFailureCheck = Date.now();
  let lastProblem = "no answer yet";
  for (;;) {
    if (probe.deadline.fired) {
      const cause = probe.deadline.error();
      if (cause instanceof AbortedError) throw cause;
      throw new InstanceStartError(probe.instance, `not ready: ${lastProblem}`, await safeLogs(probe), {
        cause,
      });
    }
    try {
      const answer = await probe.http.request({
        method: "GET",
        path: "/health",
        signal: attemptSignal(probe.deadline),
      });
      if (answer.status === 200 || probe.envType === "http_based") return;
      lastProblem = `/health answered ${answer.status}`;
    } catch (err) {
      lastProblem = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() - lastFailureCheck >= FAILURE_CHECK_EVERY_MS) {
      lastFailureCheck = Date.now();
      const failure = await probe.failure();
      if (failure) throw new InstanceStartError(probe.instance, failure, await safeLogs(probe));
    }
    await sleepUnlessFired(probe.deadline, interval);
    interval =
      Date.now() - started < EARLY_PHASE_MS
        ? Math.min(EARLY_MAX_INTERVAL_MS, Math.ceil(interval * 1.5))
        : LATE_INTERVAL_MS;
  }
}

function attemptSignal(deadline: Deadline): AbortSignal {
  // Short: an address with nothing behind it (a container between restarts) must not stall the loop.
  const attempt = AbortSignal.timeout(1_000);
  return deadline.signal ? AbortSignal.any([deadline.signal, attempt]) : attempt;
}

async function sleepUnlessFired(deadline: Deadline, ms: number): Promise<void> {
  try {
    await deadline.sleep(ms);
  } catch {
    // The loop reports the deadline with the last problem seen.
  }
}

async function safeLogs(probe: ReadinessProbe): Promise<string> {
  try {
    return await probe.logs();
  } catch {
    return "";
  }
}

/**
 * The client readiness probes use (`authToken`: the instance's, so a probe also proves
 * the owner's connection to the server's connection cap). Its connect timeout is short because a container
 * between restarts has no address: a connect there hangs instead of being refused, and
 * undici does not cut a pending connect when the request's signal fires.
 */
export function readinessClient(endpoint: string, authToken?: string): HttpClient {
  return new HttpClient(endpoint, { connections: 1, connectTimeoutMs: 500, authToken });
}
