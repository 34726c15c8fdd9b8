/**
 * Global setup of the test run: at its end, nothing the tests started may still run —
 * no container labelled by affinetes created during the run, no Slurm job of ours, no
 * process started under the run's state folder, no detached deploy job (tmux) of a test. What is found is named, removed, and
 * fails the run: "nothing leaks" is checked, not hoped.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import Docker from "dockerode";
import { clearStaleShellLocks } from "./helpers/shell-locks.js";

const started = Math.floor(Date.now() / 1000);

export default function setup(): () => Promise<void> {
  // SSH sessions killed by the tests may leave pyenv's rehash lock behind (see shell-locks.ts)
  clearStaleShellLocks();
  const watchdog = setInterval(() => clearStaleShellLocks(), 1_000);
  watchdog.unref();
  return async () => {
    clearInterval(watchdog);
    // Development only: several test runs sharing one engine would remove each other's
    // containers. CI never sets it.
    if (process.env.AFFINETES_SKIP_LEAK_CHECK === "1" && process.env.CI !== "true") return;
    const leaks = [...(await containers()), ...jobs(), ...processes(), ...tmuxJobs()];
    // the run's state folder (records, sockets, sandboxes' folders) goes with the run
    const stateDir = process.env.AFFINETES_TEST_STATE_DIR;
    if (stateDir && leaks.length === 0) rmSync(stateDir, { recursive: true, force: true });
    if (leaks.length === 0) return;
    for (const leak of leaks) await leak.remove().catch(() => undefined);
    process.exitCode = 1; // vitest reports an error thrown here, but would still exit 0
    throw new Error(`the tests left these behind (now removed):\n  ${leaks.map((l) => l.what).join("\n  ")}`);
  };
}

interface Leak {
  what: string;
  remove: () => Promise<void>;
}

/** Containers of ours created during the run: on this engine and on the SSH hosts' engines. */
async function containers(): Promise<Leak[]> {
  const engines: Array<[string, Docker]> = [
    ["", new Docker()],
    ...["b", "c"].map((h): [string, Docker] => [
      ` on engine ${h}`,
      new Docker({ socketPath: `/run/docker-${h}.sock` }),
    ]),
  ];
  const leaks: Leak[] = [];
  for (const [where, docker] of engines) {
    // environments' containers, and deployed docker workspaces' (labels are ANDed: one query each)
    for (const label of ["affinetes.managed=true", "affinetes.deploy"]) {
      const list = await docker.listContainers({ all: true, filters: { label: [label] } }).catch(() => []);
      for (const c of list.filter((c) => c.Created >= started)) {
        leaks.push({
          what: `container ${c.Names[0]}${where} (${c.State}, ${c.Labels["affinetes.env.name"] ?? c.Image})`,
          remove: async () => {
            await docker.getContainer(c.Id).remove({ force: true });
          },
        });
      }
    }
  }
  return leaks;
}

function jobs(): Leak[] {
  let out = "";
  try {
    out = execFileSync("squeue", ["--me", "-h", "-o", "%i|%k|%j"], { encoding: "utf8" });
  } catch {
    return []; // no Slurm here
  }
  return out
    .split("\n")
    .map((line) => line.trim().split("|"))
    .filter(([id, comment]) => id && comment?.startsWith("affinetes:"))
    .map(([id, , name]) => ({
      what: `Slurm job ${id} (${name})`,
      remove: async () => {
        execFileSync("scancel", [id as string]);
      },
    }));
}

/** Detached deploy jobs (tmux sessions `afs-job-*`) whose job folder is a test's (/tmp/affinetes-test-*). */
function tmuxJobs(): Leak[] {
  let out = "";
  try {
    out = execFileSync("tmux", ["ls", "-F", "#{session_name}|#{pane_start_command}"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
  } catch {
    return []; // no tmux, or no server: no sessions
  }
  return out
    .split("\n")
    .map((line) => line.split("|"))
    .filter(([name, command]) => name?.startsWith("afs-job-") && command?.includes("/tmp/affinetes-test-"))
    .map(([name]) => ({
      what: `tmux job session ${name}`,
      remove: async () => {
        execFileSync("tmux", ["kill-session", "-t", `=${name}`]);
      },
    }));
}

/** Processes whose environment names this run's state folder (sandboxes, servers, commands). */
function processes(): Leak[] {
  const dir = process.env.AFFINETES_TEST_STATE_DIR;
  if (!dir) return [];
  const needle = `AFFINETES_STATE_DIR=${dir}\0`;
  const leaks: Leak[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${pid}/environ`, "utf8").includes(needle)) continue;
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      // vitest's own workers carry the variable too, and end on their own
      if (/vitest|node_modules/.test(cmdline)) continue;
      leaks.push({
        what: `process ${pid}: ${cmdline.slice(0, 120)}`,
        remove: async () => {
          process.kill(pid, "SIGKILL");
        },
      });
    } catch {
      // exited meanwhile, or not ours
    }
  }
  return leaks;
}
