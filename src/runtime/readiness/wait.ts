import { InstanceStartError } from "../../errors.js";
import type { InstanceKind } from "../instance-spec.js";
import { httpHealth } from "./http-health.js";
import { failIfFailed, pollReadiness, startLogs } from "./poll-readiness.js";
import type { ReadinessStrategy } from "./readiness-strategy.js";

/** How long one readiness command may run. */
const COMMAND_TIMEOUT_MS = 10_000;

/**
 * The readiness strategies, as `InstanceSpec.readiness` takes them:
 *
 * ```ts
 * await runtime.start({ envName: "db", image, serve: false, task: { command: "serve-db" },
 *   readiness: Wait.forLogLine(/accepting connections/) });
 * ```
 */
export const Wait = {
  /** `GET /health` answers (the default of serving instances). */
  forHealth(): ReadinessStrategy {
    return httpHealth;
  },

  /** It runs (the default of sandboxes): one look, failing when it already exited. */
  forRunning(): ReadinessStrategy {
    return { description: "running", waitUntilReady: failIfFailed };
  },

  /** Nothing beyond the start itself (the default of tasks, which may have ended already). */
  forStarted(): ReadinessStrategy {
    return { description: "started", waitUntilReady: async () => undefined };
  },

  /** `command` (`sh -c`, in the instance) exits 0; tried again until it does. */
  forCommand(command: string): ReadinessStrategy {
    return {
      description: `${command} succeeding`,
      waitUntilReady: (target) =>
        pollReadiness(target, async () => {
          const result = await target.instance.exec(command, {
            timeoutMs: COMMAND_TIMEOUT_MS,
            ...(target.deadline.signal ? { signal: target.deadline.signal } : {}),
          });
          if (result.exitCode === 0) return undefined;
          return `${command} exited with code ${result.exitCode}: ${(result.stderr || result.stdout).trim().slice(-200)}`;
        }),
    };
  },

  /** A line of its output matches `pattern` (a string is looked for as is). */
  forLogLine(pattern: string | RegExp): ReadinessStrategy {
    const matches = (line: string) =>
      typeof pattern === "string" ? line.includes(pattern) : pattern.test(line);
    return {
      description: `a log line matching ${String(pattern)}`,
      waitUntilReady: (target) =>
        pollReadiness(target, async () =>
          (await target.instance.logs()).split("\n").some(matches)
            ? undefined
            : `no line matches ${String(pattern)} yet`,
        ),
    };
  },

  /**
   * It ran to its end with exit code 0 (a one-shot start, e.g. a migration); another
   * exit code fails the start, with its logs.
   */
  forExit(): ReadinessStrategy {
    return {
      description: "its exit",
      async waitUntilReady(target) {
        const code = await target.deadline.run((signal) => target.instance.wait(signal ? { signal } : {}));
        if (code !== 0)
          throw new InstanceStartError(
            target.instance.name,
            `it exited with code ${code}`,
            await startLogs(target),
          );
      },
    };
  },
} as const;

/** What a start waits for unless the spec says: by kind. */
export function defaultReadiness(kind: InstanceKind): ReadinessStrategy {
  if (kind === "serve") return Wait.forHealth();
  return kind === "sandbox" ? Wait.forRunning() : Wait.forStarted();
}
