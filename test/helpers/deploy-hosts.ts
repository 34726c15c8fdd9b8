import { execFileSync } from "node:child_process";
import { inCi } from "./docker.js";

/**
 * The hosts of the deploy tests: sshds no test kills (c, and d on c's engine), so they
 * never lose their connection to another file's failure drill on host b.
 */
export const deployHosts = [
  { name: "c", address: "127.0.0.3", url: "ssh://root@127.0.0.3:2222", socket: "/run/docker-c.sock" },
  { name: "d", address: "127.0.0.4", url: "ssh://root@127.0.0.4:2222", socket: "/run/docker-c.sock" },
] as const;

/** Whether both deploy hosts answer over SSH (b's engine is not needed: its drills do not matter here). */
function reachable(): string | undefined {
  try {
    for (const host of deployHosts) {
      execFileSync(
        "ssh",
        ["-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-p", "2222", `root@${host.address}`, "true"],
        {
          stdio: "ignore",
          timeout: 10_000,
        },
      );
    }
    return undefined;
  } catch (err) {
    return (err as Error).message.split("\n")[0];
  }
}

const problem = reachable();
if (problem && inCi)
  throw new Error(`CI requires the deploy SSH hosts (.ci/setup-ssh-hosts.sh starts them): ${problem}`);
if (problem) console.warn(`[affinetes tests] deploy tests skipped: ${problem} (run .ci/setup-ssh-hosts.sh)`);

/** True when the deploy hosts answer. */
export const hasDeployHosts = problem === undefined;

/** This test process's own established SSH connections to `address:2222`: their local ends. */
export function ownConnections(address: string): string[] {
  return sockets("( dport = :2222 )")
    .filter(([, , , peer, users]) => peer === `${address}:2222` && users?.includes(`pid=${process.pid},`))
    .map(([, , local]) => local as string);
}

/**
 * Drops this test process's own SSH connections to `address:2222` (killing the sshd
 * processes serving just them), as a network failure would; other clients of that sshd
 * keep theirs. Returns how many were dropped.
 */
export function dropConnections(address: string): number {
  const mine = ownConnections(address);
  // the sshd side of each: address:2222 -> our local end
  const pids = sockets("( sport = :2222 )")
    .filter(([, , local, peer]) => local === `${address}:2222` && mine.includes(peer as string))
    .flatMap(([, , , , users]) => [...(users ?? "").matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
  for (const pid of new Set(pids)) process.kill(pid, "SIGKILL");
  return mine.length;
}

/** Established TCP sockets matching an `ss` filter, as columns. */
function sockets(filter: string): string[][] {
  return execFileSync("ss", ["-tnpH", "state", "established", filter], { encoding: "utf8" })
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols.length >= 5);
}
