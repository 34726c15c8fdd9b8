import { RuntimeUnavailableError, SlurmError } from "../../errors.js";
import { runLocal } from "../../host/local-command.js";

/** The Slurm client commands, by default from the PATH. */
export interface SlurmCommands {
  sbatch: string;
  srun: string;
  scancel: string;
  squeue: string;
  scontrol: string;
  sacct: string;
}

export const DEFAULT_SLURM_COMMANDS: SlurmCommands = {
  sbatch: "sbatch",
  srun: "srun",
  scancel: "scancel",
  squeue: "squeue",
  scontrol: "scontrol",
  sacct: "sacct",
};

/** A job's state as Slurm reports it. */
export interface JobState {
  /** RUNNING, PENDING, COMPLETED, CANCELLED, FAILED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, ... */
  state: string;
  /** Why it pends or ended (`Resources`, `NonZeroExitCode`, ...), when Slurm says. */
  reason: string | undefined;
  /** The node it runs on. */
  node: string | undefined;
  /** `exit:signal`, e.g. `0:15`. */
  exitCode: string | undefined;
}

/** States from which a job may still run. */
const ACTIVE = new Set(["PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "REQUEUED", "RESIZING"]);

/** Whether a job in `state` may still run (pending, running, ...), as opposed to ended. */
export function isActive(state: string): boolean {
  return ACTIVE.has(state);
}

/**
 * Runs one Slurm command on this machine and returns its stdout. A missing command or an
 * unreachable controller is `RuntimeUnavailableError`; any other failure (a timeout too)
 * `SlurmError` with its stderr.
 */
export async function slurmCommand(
  file: string,
  args: readonly string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string> {
  const what = `${file} ${args.join(" ")}`;
  const result = await runLocal([file, ...args], {
    timeoutMs: options.timeoutMs ?? 60_000,
    maxOutputBytes: 16 * 1024 * 1024,
    ...(options.input !== undefined ? { input: options.input } : {}),
    ...(options.env ? { processEnv: options.env } : {}),
  }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw new SlurmError(what, err.message, { cause: err });
    throw new RuntimeUnavailableError("slurm", `${file} is not installed here (a Slurm login node has it)`);
  });
  const { stdout, stderr } = result;
  if (result.exitCode === 0 && !result.truncated) return stdout;
  if (/Unable to contact slurm controller|Zero Bytes were transmitted/i.test(stderr)) {
    throw new RuntimeUnavailableError("slurm", stderr.trim());
  }
  const why = result.timedOut ? `no answer within ${options.timeoutMs ?? 60_000} ms` : "";
  throw new SlurmError(what, stderr || why || `exit code ${result.exitCode}`);
}

/** `KEY=value KEY2=value2 ...` (one `scontrol -o` line) as a map; values hold no spaces except the last ones'. */
export function parseScontrolLine(line: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const match of line.matchAll(/(\w+)=(\S*)/g)) fields[match[1] as string] = match[2] as string;
  return fields;
}

/**
 * The state of job `jobId`: from `scontrol` while Slurm remembers the job (MinJobAge
 * after it ended), then from `sacct` (accounting or the job-completion log); undefined
 * when neither knows it.
 */
export async function jobState(commands: SlurmCommands, jobId: string): Promise<JobState | undefined> {
  try {
    const line = await slurmCommand(commands.scontrol, ["show", "job", "-o", jobId]);
    const f = parseScontrolLine(line);
    if (f.JobState) {
      return {
        state: f.JobState,
        reason: f.Reason && f.Reason !== "None" ? f.Reason : undefined,
        node: f.NodeList && f.NodeList !== "(null)" ? f.NodeList : undefined,
        exitCode: f.ExitCode,
      };
    }
  } catch (err) {
    if (!(err instanceof SlurmError) || !/Invalid job id/i.test(err.stderr)) throw err;
  }
  return accountedState(commands, jobId);
}

/** What `sacct` knows of an ended job: with slurmdbd, or `-c` from the job-completion log. */
async function accountedState(commands: SlurmCommands, jobId: string): Promise<JobState | undefined> {
  for (const extra of [[], ["-c"]]) {
    const out = await slurmCommand(commands.sacct, [
      ...extra,
      "-n",
      "-P",
      "-X",
      "-j",
      jobId,
      "-o",
      "state,exitcode,nodelist",
    ]).catch(() => "");
    const [state, exitCode, node] = (out.trim().split("\n").pop() ?? "").split("|");
    if (state) return { state: state.split(" ")[0] as string, reason: undefined, node, exitCode };
  }
  return undefined;
}

/** The states of this user's jobs, by id (one `squeue` for all of them). */
export async function jobStates(commands: SlurmCommands): Promise<Map<string, string>> {
  const out = await slurmCommand(commands.squeue, ["--me", "-h", "-t", "all", "-o", "%i|%T"]);
  const states = new Map<string, string>();
  for (const line of out.split("\n")) {
    const [id, state] = line.trim().split("|");
    if (id && state) states.set(id, state);
  }
  return states;
}

/** The address a node is reached at (its NodeAddr; the node name when Slurm gives none). */
export async function nodeAddress(commands: SlurmCommands, node: string): Promise<string> {
  const line = await slurmCommand(commands.scontrol, ["show", "node", "-o", node]);
  return parseScontrolLine(line).NodeAddr ?? node;
}
