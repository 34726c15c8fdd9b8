import { shellQuote } from "../../util/shell-quote.js";
import type { Host } from "../../host/host.js";

/** How long a probe of the host's tools may take. */
export const PROBE_TIMEOUT_MS = 20_000;

/**
 * Which of `tools` the host's login shell cannot find (as later commands will run
 * through that same shell), as a reason; undefined when all are there.
 */
export async function missingTools(host: Host, tools: readonly string[]): Promise<string | undefined> {
  const script = tools
    .map((tool) => `command -v ${shellQuote(tool)} >/dev/null 2>&1 || echo ${shellQuote(tool)}`)
    .join("; ");
  const result = await host.exec(script, { timeoutMs: PROBE_TIMEOUT_MS });
  if (result.timedOut) return `probing ${tools.join(", ")} timed out`;
  const missing = result.stdout.split("\n").filter(Boolean);
  if (missing.length === 0 && result.exitCode === 0) return undefined;
  if (missing.length === 0) return `probing ${tools.join(", ")} failed: ${result.stderr.trim()}`;
  return `${missing.join(", ")} not found on the PATH of ${host.label}`;
}
