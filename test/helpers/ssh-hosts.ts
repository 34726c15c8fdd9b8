import { execFileSync, execSync } from "node:child_process";
import Docker from "dockerode";
import { inCi } from "./docker.js";

/** The two extra Docker hosts .ci/setup-ssh-hosts.sh starts (sshd on :2222, own dockerd each). */
export const remoteHosts = [
  { name: "b", address: "127.0.0.2", url: "ssh://root@127.0.0.2:2222", socket: "/run/docker-b.sock" },
  { name: "c", address: "127.0.0.3", url: "ssh://root@127.0.0.3:2222", socket: "/run/docker-c.sock" },
] as const;

export type RemoteHost = (typeof remoteHosts)[number];

function reachable(): string | undefined {
  try {
    for (const host of remoteHosts) {
      execFileSync(
        "ssh",
        [
          "-o",
          "BatchMode=yes",
          "-o",
          "ConnectTimeout=3",
          "-p",
          "2222",
          `root@${host.address}`,
          "docker",
          "version",
        ],
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
  throw new Error(`CI requires the SSH Docker hosts (.ci/setup-ssh-hosts.sh starts them): ${problem}`);
if (problem)
  console.warn(`[affinetes tests] remote host tests skipped: ${problem} (run .ci/setup-ssh-hosts.sh)`);

/** True when both SSH Docker hosts answer. */
export const hasSshHosts = problem === undefined;

/** The Docker engine of a remote host, reached directly (for checks only). */
export function engineOf(host: RemoteHost): Docker {
  return new Docker({ socketPath: host.socket });
}

/** Kills a host's sshd: the listener and every connection it serves. */
export function killSshd(host: RemoteHost): void {
  const pid = execSync(`cat /run/sshd-${host.name}.pid`).toString().trim();
  execSync(`pkill -KILL -P ${pid} || true; kill -KILL ${pid} || true`);
}

/**
 * The environment daemons restarted by tests get: the machine's, not the test run's (they
 * outlive the run, and must not look like something the tests left behind).
 */
function machineEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(AFFINETES_|VITEST|NODE_OPTIONS)/.test(key)),
  );
}

/** Starts a host's sshd again, exactly as the setup script does. */
export function startSshd(host: RemoteHost): void {
  execSync(
    `/usr/sbin/sshd -p 2222 -o ListenAddress=${host.address} -o PermitRootLogin=prohibit-password ` +
      `-o SetEnv=DOCKER_HOST=unix://${host.socket} -o PidFile=/run/sshd-${host.name}.pid`,
    { env: machineEnv() },
  );
}

/** Stops a host's dockerd (its containers stop with it). */
export function stopDockerd(host: RemoteHost): void {
  // Wait for the process itself to end: a new dockerd cannot start while it holds its pidfile.
  execSync(
    `pid=$(cat /run/docker-${host.name}.pid); kill $pid; ` +
      `for i in $(seq 1 300); do kill -0 $pid 2>/dev/null || exit 0; sleep 0.1; done; kill -KILL $pid`,
  );
}

/** Starts a host's dockerd again through the setup script (idempotent for everything else). */
export function startDockerd(): void {
  execSync("bash .ci/setup-ssh-hosts.sh", { stdio: "ignore", env: machineEnv() });
}
