import { posix } from "node:path";
import { CommandError, ConflictError, NotFoundError, ValidationError } from "../errors.js";
import { shellQuote } from "../util/shell-quote.js";
import type { Host } from "../host/host.js";
import { JOB_SHELL_FUNCTIONS, Job, readJobRecords } from "./job.js";
import type { JobInfo } from "./job.js";

export { Job } from "./job.js";
export type { JobInfo, JobState } from "./job.js";

/** Where the jobs of a host live. */
export interface JobsOptions {
  /** Default `~/.affinetes`; jobs live in `<root>/jobs/<name>/`. Absolute or `~/`-relative. */
  root?: string;
}

/** What to run, where, as which job. */
export interface StartJobOptions extends JobsOptions {
  /** 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with a dot; unique among running jobs. */
  name: string;
  /** A shell command line, run by bash (sh where the host has no bash). */
  command: string;
  /** The folder the command runs in (default: the home folder); absolute or `~/`-relative. */
  workspace?: string;
  /** Variables exported to the command. */
  env?: Readonly<Record<string, string>>;
  /**
   * The command line actually run, when it differs from `command` (a deployed workspace
   * runs it in its environment); `command` is what the job's record shows.
   */
  runAs?: string;
}

const DEFAULT_ROOT = "~/.affinetes";
// A leading dot is refused: "." and ".." would name the jobs folder or its parent.
const NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Starts `command` on the host, detached in the tmux session `afs-job-<name>`, so it runs
 * on when this connection drops. Output (stdout and stderr) goes to `<root>/jobs/<name>/log`.
 * A running job of that name is a `ConflictError`; an ended one is replaced (its log too).
 */
export async function startJob(host: Host, options: StartJobOptions): Promise<Job> {
  validateStart(options);
  const jobsDir = await jobsFolder(host, options.root);
  const workspace =
    options.workspace !== undefined ? await absolutePath(host, options.workspace, "workspace") : undefined;
  const dir = `${jobsDir}/${options.name}`;
  const run = runScript(dir, workspace, options.env);
  const script = launchScript(
    dir,
    options.name,
    options.command,
    options.runAs ?? options.command,
    workspace,
    run,
  );
  const result = await host.exec(`sh -c ${shellQuote(script)}`);
  const outcome = result.stdout.trim().split("\n").at(-1);
  // Another start of the same name won the tmux session name between our check and ours.
  if (outcome === "running" || /duplicate session/.test(result.stderr))
    throw new ConflictError("job", options.name);
  if (outcome === "no-workspace")
    throw new ValidationError("workspace", `no such folder on ${host.label}: ${workspace ?? ""}`);
  if (result.exitCode !== 0 || outcome !== "started")
    throw new CommandError(
      `starting job ${options.name} on ${host.label}`,
      result.exitCode,
      result.stdout,
      result.stderr,
    );
  return new Job(host, options.name, jobsDir);
}

/** Every job recorded on the host (running or not), oldest first, read in one round trip. */
export async function listJobs(host: Host, options: JobsOptions = {}): Promise<JobInfo[]> {
  const records = await readJobRecords(host, await jobsFolder(host, options.root));
  return records.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.name.localeCompare(b.name));
}

/** A handle on a recorded job, e.g. from a new connection; `NotFoundError` when there is none. */
export async function getJob(host: Host, name: string, options: JobsOptions = {}): Promise<Job> {
  validateName(name);
  const jobsDir = await jobsFolder(host, options.root);
  const [info] = await readJobRecords(host, jobsDir, name);
  if (!info) throw new NotFoundError("job", name);
  return new Job(host, name, jobsDir);
}

function validateName(name: unknown): asserts name is string {
  if (typeof name !== "string" || !NAME.test(name))
    throw new ValidationError(
      "name",
      `${JSON.stringify(name)} must be 1 to 64 of A-Z a-z 0-9 . _ - and not start with a dot`,
    );
}

function validateStart(options: StartJobOptions): void {
  validateName(options.name);
  // Shell arguments cannot carry NUL bytes; they would be cut silently.
  noNul(options.command, "command");
  if (options.runAs !== undefined) noNul(options.runAs, "runAs");
  if (!options.command.trim()) throw new ValidationError("command", "must not be empty");
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (!ENV_NAME.test(key)) throw new ValidationError(`env.${key}`, "is not a valid variable name");
    noNul(value, `env.${key}`);
  }
}

function noNul(value: unknown, option: string): void {
  if (typeof value !== "string") throw new ValidationError(option, "must be a string");
  if (value.includes("\0")) throw new ValidationError(option, "must not contain NUL bytes");
}

async function jobsFolder(host: Host, root: string | undefined): Promise<string> {
  return `${await absolutePath(host, root ?? DEFAULT_ROOT, "root")}/jobs`;
}

/**
 * `~/` expanded and normalised: scripts compare the job's command line against this exact
 * path, so every handle must spell it the same way.
 */
async function absolutePath(host: Host, path: string, option: string): Promise<string> {
  noNul(path, option);
  const resolved = await host.resolvePath(path);
  if (!resolved.startsWith("/"))
    throw new ValidationError(option, `must be absolute or start with ~/: ${path}`);
  const normal = posix.normalize(resolved);
  return normal.length > 1 ? normal.replace(/\/+$/, "") : normal;
}

/**
 * The job's own script (`run.sh`): written to a file so no quoting passes through tmux.
 * It records its pid, runs the command with output appended to the log, and writes
 * ended_at then exit_code, each by rename, so a reader never sees a half-written one.
 */
function runScript(
  dir: string,
  workspace: string | undefined,
  env: Readonly<Record<string, string>> = {},
): string {
  const exports = Object.entries(env)
    .map(([key, value]) => `export ${key}=${shellQuote(value)}\n`)
    .join("");
  return `# An affinetes job (src/deploy/jobs.ts).
d=${shellQuote(dir)}
echo $$ > "$d/pid.tmp" && mv -f "$d/pid.tmp" "$d/pid"
# Every process of the job inherits this, so kill() finds even those that left its process group.
export AFFINETES_JOB_DIR="$d"
${exports}if command -v bash >/dev/null 2>&1; then run=bash; else run=sh; fi
cd ${workspace !== undefined ? shellQuote(workspace) : '"$HOME"'} >> "$d/log" 2>&1 && "$run" "$d/exec" >> "$d/log" 2>&1 < /dev/null
code=$?
date -u +%Y-%m-%dT%H:%M:%SZ > "$d/ended_at.tmp" && mv -f "$d/ended_at.tmp" "$d/ended_at"
echo "$code" > "$d/exit_code.tmp" && mv -f "$d/exit_code.tmp" "$d/exit_code"
`;
}

/** Checks the name is free, writes the job folder and starts the tmux session, in one round trip. */
function launchScript(
  dir: string,
  name: string,
  command: string,
  exec: string,
  workspace: string | undefined,
  run: string,
): string {
  const q = shellQuote;
  // Two arguments: tmux runs the script itself as the pane's process (its pid is then the
  // process group and session to kill), no login shell between: a bash there would read
  // ~/.bashrc when the tmux server was started over SSH (pyenv's rehash and all).
  const ws = workspace !== undefined ? q(workspace) : "";
  return `${JOB_SHELL_FUNCTIONS}
# The job outlives this command: it must not carry the tag that stopping this command kills by.
unset AFFINETES_COMMAND_TAG
d=${q(dir)}; n=${q(name)}; s=$(afs_session "$n")
if afs_running "$d" "$n"; then echo running; exit 0; fi
${ws ? `[ -d ${ws} ] || { echo no-workspace; exit 0; }` : ""}
# An ended job's session may linger a moment (or for good with remain-on-exit).
tmux kill-session -t "=$s" 2>/dev/null
rm -rf "$d" && mkdir -p "$d" || exit 1
printf '%s' ${q(command)} > "$d/command"
printf '%s' ${q(exec)} > "$d/exec"
${ws ? `printf '%s' ${ws} > "$d/workspace"` : ""}
printf '%s' ${q(run)} > "$d/run.sh"
: > "$d/log"
date -u +%Y-%m-%dT%H:%M:%SZ > "$d/started_at"
# On failure (e.g. no tmux) no half-made record is left, unless the session exists:
# then a concurrent start of the same name won, and the folder is its.
tmux new-session -d -s "$s" /bin/sh ${q(`${dir}/run.sh`)} || {
  _c=$?; tmux has-session -t "=$s" 2>/dev/null || rm -rf "$d"; exit "$_c"
}
# Wait for the pid, so follow() and kill() can use it as soon as startJob returns.
_i=0
while [ ! -s "$d/pid" ] && [ ! -e "$d/exit_code" ] && [ "$_i" -lt 200 ]; do sleep 0.05; _i=$((_i + 1)); done
echo started`;
}
