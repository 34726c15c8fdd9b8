import { readdirSync, readFileSync } from "node:fs";

/**
 * The pids of this user's processes whose environment holds `name=value`. Children
 * inherit the environment, so this finds every process a command started, also those
 * that left its process group (`setsid`, daemons). Linux only; elsewhere none.
 */
export function taggedProcesses(name: string, value: string): number[] {
  const needle = Buffer.from(`\0${name}=${value}\0`);
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    try {
      // a leading NUL lets the first variable match like the others
      const environ = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${pid}/environ`)]);
      if (environ.includes(needle)) pids.push(pid);
    } catch {
      // exited meanwhile, or not ours to read
    }
  }
  return pids;
}
