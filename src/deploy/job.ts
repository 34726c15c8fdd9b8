import { CommandError, ConflictError, NotFoundError, ValidationError } from "../errors.js";
import type { Host } from "../host/host.js";
import { Deadline } from "../util/deadline.js";
import { shellQuote } from "../util/shell-quote.js";
import { withinDeadline } from "./bootstrap/remote-command.js";
import { LineSplitter } from "./line-splitter.js";

/** Where a job is: still running, ended on its own, killed, or gone without a trace of its end. */
export type JobState = "running" | "exited" | "killed" | "lost";

/** What the host's job folder says about a job. */
export interface JobInfo {
  name: string;
  /** `lost`: neither running nor ended (e.g. the machine rebooted under it). */
  state: JobState;
  /** The command's exit code once it ended (137 when killed). */
  exitCode?: number;
  command: string;
  /** The folder the command ran in (absolute). */
  workspace?: string;
  /** ISO time, the host's clock. */
  startedAt: string;
  endedAt?: string;
  /** Size of the log (stdout and stderr merged). */
  logBytes: number;
}

/**
 * Shell functions every job script shares, so "running" means the same thing to status,
 * wait, kill, start and remove. POSIX sh: the login shell may be anything.
 */
export const JOB_SHELL_FUNCTIONS = `
afs_session() { printf 'afs-job-%s' "$(printf %s "$1" | tr . ,)"; }
afs_alive() {
  _p=$(cat "$1/pid" 2>/dev/null) && [ -n "$_p" ] && kill -0 "$_p" 2>/dev/null || return 1
  # After a reboot the pid may belong to another process: it must still run our script.
  [ -r "/proc/$_p/cmdline" ] || return 0
  tr '\\0' '\\n' < "/proc/$_p/cmdline" | grep -qxF "$1/run.sh"
}
afs_running() {
  if [ -e "$1/exit_code" ] || [ -e "$1/killed" ]; then return 1; fi
  tmux has-session -t "=$(afs_session "$2")" 2>/dev/null || afs_alive "$1"
}
afs_record() {
  _r=0; afs_running "$1" "$2" && _r=1
  _k=0; [ -e "$1/killed" ] && _k=1
  _b=0; [ -f "$1/log" ] && _b=$(wc -c < "$1/log")
  printf '%s\\0' "$2" "$(cat "$1/command" 2>/dev/null)" "$(cat "$1/workspace" 2>/dev/null)" \\
    "$(cat "$1/started_at" 2>/dev/null)" "$(cat "$1/ended_at" 2>/dev/null)" \\
    "$(cat "$1/exit_code" 2>/dev/null)" "$_k" "$_r" "$_b"
}
`;

const RECORD_FIELDS = 9;
/** How long one remote wait blocks: bounded so an abandoned wait ends on its own. */
const WAIT_ROUND_MS = 5_000;
const POLL_MS = 200;

/**
 * Runs a script in sh on the host and returns its stdout; a non-zero exit is a
 * `CommandError` (the scripts print their expected outcomes and exit 0).
 */
export async function runJobScript(
  host: Host,
  what: string,
  script: string,
  signal?: AbortSignal,
): Promise<string> {
  const result = await host.exec(`sh -c ${shellQuote(script)}`, signal ? { signal } : {});
  if (result.exitCode !== 0)
    throw new CommandError(`${what} on ${host.label}`, result.exitCode, result.stdout, result.stderr);
  return result.stdout;
}

/**
 * The records of the jobs under `jobsDir` (one job when `name` is given), in one round
 * trip; with `waitMs`, the host first waits up to that long for the job(s) to stop running.
 */
export async function readJobRecords(
  host: Host,
  jobsDir: string,
  name?: string,
  options: { waitMs?: number; signal?: AbortSignal | undefined } = {},
): Promise<JobInfo[]> {
  const folders = name !== undefined ? shellQuote(`${jobsDir}/${name}`) : `${shellQuote(jobsDir)}/*`;
  const rounds = Math.ceil((options.waitMs ?? 0) / POLL_MS);
  const script = `${JOB_SHELL_FUNCTIONS}
for _d in ${folders}; do
  [ -f "$_d/started_at" ] || continue
  _n=$(basename "$_d")
  _i=0
  while [ "$_i" -lt ${rounds} ] && afs_running "$_d" "$_n"; do sleep ${POLL_MS / 1000}; _i=$((_i + 1)); done
  afs_record "$_d" "$_n"
done`;
  return parseRecords(await runJobScript(host, "reading jobs", script, options.signal));
}

function parseRecords(stdout: string): JobInfo[] {
  const fields = stdout.split("\0").slice(0, -1);
  const records: JobInfo[] = [];
  for (let i = 0; i + RECORD_FIELDS <= fields.length; i += RECORD_FIELDS) {
    records.push(toInfo(fields.slice(i, i + RECORD_FIELDS)));
  }
  return records;
}

function toInfo(fields: string[]): JobInfo {
  const [name = "", command = "", workspace, startedAt = "", endedAt, exitCode, killed, running, bytes] =
    fields;
  const code = exitCode ? Number(exitCode) : undefined;
  // The killed marker wins: kill() also writes exit_code, and a killed job may race its own end.
  const state: JobState =
    killed === "1" ? "killed" : code !== undefined ? "exited" : running === "1" ? "running" : "lost";
  return {
    name,
    state,
    command,
    startedAt,
    logBytes: Number(bytes?.trim() || 0),
    ...(code !== undefined ? { exitCode: code } : {}),
    ...(workspace ? { workspace } : {}),
    ...(endedAt ? { endedAt } : {}),
  };
}

/**
 * A job running detached in tmux on a host: it outlives the SSH connection that started
 * it, and this handle can be rebuilt from any later connection (`getJob`).
 */
export class Job {
  /** @internal Use `startJob` or `getJob`. */
  constructor(
    private readonly host: Host,
    readonly name: string,
    private readonly jobsDir: string,
  ) {}

  private get dir(): string {
    return `${this.jobsDir}/${this.name}`;
  }

  /** The job's state and record, read in one round trip. */
  async status(): Promise<JobInfo> {
    return this.one(await readJobRecords(this.host, this.jobsDir, this.name));
  }

  /**
   * The log (stdout and stderr merged): from byte `offset` (default 0), the last `tail`
   * lines of that. `offset` in the answer is where the next read continues.
   */
  async logs(options: { tail?: number; offset?: number } = {}): Promise<{ text: string; offset: number }> {
    const from = count(options.offset ?? 0, "offset");
    const tail = options.tail !== undefined ? ` | tail -n ${count(options.tail, "tail")}` : "";
    // The size is taken first and only that much is read, so the offset matches the text.
    const script = `d=${shellQuote(this.dir)}; off=${from}
[ -f "$d/log" ] || { echo missing; exit 0; }
size=$(wc -c < "$d/log"); size=$((size))
[ "$off" -gt "$size" ] && off=$size
echo "$size"
tail -c +$((off + 1)) "$d/log" | head -c $((size - off))${tail}`;
    const out = await runJobScript(this.host, `reading the log of job ${this.name}`, script);
    const newline = out.indexOf("\n");
    const head = out.slice(0, newline);
    if (head === "missing" || newline < 0) throw new NotFoundError("job", this.name);
    return { text: out.slice(newline + 1), offset: Number(head) };
  }

  /**
   * The log's lines as they are written (without their newline), from byte `offset`;
   * ends when the job has ended and all its output is read, or quietly when `signal` aborts.
   */
  async *follow(options: { offset?: number; signal?: AbortSignal } = {}): AsyncIterable<string> {
    const from = count(options.offset ?? 0, "offset");
    if (options.signal?.aborted) return;
    // The first line says whether there is a log, so a log line never reads as the answer.
    const script = `${JOB_SHELL_FUNCTIONS}
d=${shellQuote(this.dir)}
[ -f "$d/log" ] || { echo missing; exit 0; }
echo following
if afs_alive "$d" && [ ! -e "$d/killed" ]; then
  exec tail -s 0.25 -c +${from + 1} -F --pid="$(cat "$d/pid")" "$d/log" 2>/dev/null
fi
exec tail -c +${from + 1} "$d/log" 2>/dev/null`;
    // closing an SSH channel does not stop a command that is not writing: the abort ends its tree
    const remote = await this.host.spawn(`sh -c ${shellQuote(script)}`, { signal: options.signal });
    remote.stderr.resume();
    const stop = () => remote.stdout.destroy();
    options.signal?.addEventListener("abort", stop, { once: true });
    const lines = new LineSplitter();
    let started = false;
    let ended = false;
    try {
      for await (const chunk of remote.stdout as AsyncIterable<Buffer>) {
        for (const line of lines.push(chunk)) {
          if (started) yield line;
          else if (line === "missing") throw new NotFoundError("job", this.name);
          else started = true;
        }
      }
      ended = true;
      const rest = lines.end();
      if (rest && started) yield rest;
    } catch (err) {
      if (!options.signal?.aborted) throw err;
    } finally {
      options.signal?.removeEventListener("abort", stop);
      if (!ended) await remote.kill();
    }
  }

  /**
   * Waits until the job is no longer running and returns its record. `timeoutMs` →
   * `TimeoutError`, `signal` → `AbortedError`; the job itself runs on either way.
   */
  async wait(options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<JobInfo> {
    const deadline = new Deadline(`waiting for job ${this.name}`, options);
    for (;;) {
      deadline.check();
      // Each round blocks on the host (a short poll loop there) instead of polling over SSH;
      // the deadline ends the round's command there.
      const records = await withinDeadline(deadline, () =>
        readJobRecords(this.host, this.jobsDir, this.name, {
          waitMs: WAIT_ROUND_MS,
          signal: deadline.signal,
        }),
      );
      const info = this.one(records);
      if (info.state !== "running") return info;
    }
  }

  /**
   * Kills the job's whole process tree: its tmux session, its process group and session,
   * and any process that kept its marker variable (daemons that left the group). Marks it
   * killed (exit code 137) unless it had already ended on its own. Idempotent.
   */
  async kill(): Promise<JobInfo> {
    const script = `${JOB_SHELL_FUNCTIONS}
d=${shellQuote(this.dir)}; n=${shellQuote(this.name)}
[ -f "$d/started_at" ] || exit 0
if [ ! -e "$d/exit_code" ] || [ -e "$d/killed" ]; then
  _alive=0; afs_alive "$d" && _alive=1
  _pid=$(cat "$d/pid" 2>/dev/null)
  # The marker first: the job must never look lost while it is being killed.
  : > "$d/killed"
  tmux kill-session -t "=$(afs_session "$n")" 2>/dev/null
  # Only a verified pid is used as a group: after a reboot it may be someone else's.
  if [ "$_alive" = 1 ]; then kill -KILL -- "-$_pid" 2>/dev/null; pkill -KILL -s "$_pid" 2>/dev/null; fi
  for _e in $(grep -lzxF "AFFINETES_JOB_DIR=$d" /proc/[0-9]*/environ 2>/dev/null); do
    _e=\${_e#/proc/}; kill -KILL "\${_e%/environ}" 2>/dev/null
  done
  # containers the job ran in a docker workspace (killing their client leaves them running)
  command -v docker >/dev/null 2>&1 && docker ps -aq --filter "label=affinetes.deploy.owner=$d" | xargs -r docker rm -f >/dev/null 2>&1
  [ -e "$d/ended_at" ] || { date -u +%Y-%m-%dT%H:%M:%SZ > "$d/ended_at.tmp" && mv -f "$d/ended_at.tmp" "$d/ended_at"; }
  [ -e "$d/exit_code" ] || { echo 137 > "$d/exit_code.tmp" && mv -f "$d/exit_code.tmp" "$d/exit_code"; }
fi
afs_record "$d" "$n"`;
    const out = await runJobScript(this.host, `killing job ${this.name}`, script);
    return this.one(parseRecords(out));
  }

  /** Deletes the job's folder (log included); refuses with `ConflictError` while it runs. */
  async remove(): Promise<void> {
    const script = `${JOB_SHELL_FUNCTIONS}
d=${shellQuote(this.dir)}; n=${shellQuote(this.name)}
if afs_running "$d" "$n"; then echo running; exit 0; fi
# An ended job's session may linger (remain-on-exit); it would block the name.
tmux kill-session -t "=$(afs_session "$n")" 2>/dev/null
rm -rf "$d"`;
    const out = await runJobScript(this.host, `removing job ${this.name}`, script);
    if (out.trim() === "running") throw new ConflictError("running job", this.name);
  }

  private one(records: JobInfo[]): JobInfo {
    const [info] = records;
    if (!info) throw new NotFoundError("job", this.name);
    return info;
  }
}

function count(value: number, option: string): number {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new ValidationError(option, `must be a whole number >= 0, got ${value}`);
  return value;
}
