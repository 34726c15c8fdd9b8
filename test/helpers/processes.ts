import { readdirSync, readFileSync } from "node:fs";

/** How many processes on this machine (containers' included) run exactly `argv`. */
export function processesRunning(argv: readonly string[]): number {
  const wanted = `${argv.join("\0")}\0`;
  let count = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8") === wanted) count++;
    } catch {
      // exited meanwhile
    }
  }
  return count;
}
