import { spawnSync } from "node:child_process";

/** The environment variable tagging every process a command in an instance starts. */
export const INSTANCE_TAG_VARIABLE = "AFFINETES_INSTANCE_TAG";

/** The environment variable marking every process of one command (children inherit it). */
export const COMMAND_TAG_VARIABLE = "AFFINETES_COMMAND_TAG";

/**
 * `command` with every process it starts marked by `tag`, so a kill of the tag finds
 * them all, also those that leave its process group or session (`setsid`, daemons).
 * The shell exports it itself, so it holds whatever environment a launcher in between
 * (ssh, srun, a sandboxing tool) gives the shell.
 */
export function tagCommand(tag: string, command: string): string {
  return `export ${COMMAND_TAG_VARIABLE}=${tag}; ${command}`;
}

/** Rounds of stopping before the kill: each catches what forked while the last was looked at. */
const MAX_ROUNDS = 20;

/**
 * Kills every process on this machine tagged `name=value`, also those forked while it
 * runs (see `KILL_TAGGED_SCRIPT`, the one kill of tagged processes on every kind of host).
 */
export function killTagged(name: string, value: string): void {
  spawnSync("sh", ["-c", KILL_TAGGED_SCRIPT, "sh", name, value], { stdio: "ignore" });
}

/**
 * Kills every process tagged `name=value`, also those forked while it runs: they are
 * stopped first (a stopped process cannot fork), round after round until a round finds
 * no new one, then all killed. A POSIX shell script, so that the same kill runs here, on
 * another machine and in a container. Run it as `sh -c SCRIPT sh NAME VALUE`: it kills
 * the processes whose environment or command line holds `NAME=VALUE` (the shell ssh
 * starts for a tagged command carries it in its command line only). It uses GNU grep when there is one (one
 * pass over /proc, for hosts with many processes), else nothing but `sh` builtins and
 * /proc (any image). Its own command lines never hold the pair (it is passed in two
 * halves, and to grep on stdin), so it never finds itself.
 */
export const KILL_TAGGED_SCRIPT = [
  'want="$1=$2"; me=$$; stopped=" "; round=0',
  'if printf "AFFINETES_PROBE=1\\n" | AFFINETES_PROBE=1 grep -lzFf - /proc/self/environ >/dev/null 2>&1; then',
  '  tagged() { printf "%s\\n" "$want" | grep -lzFf - /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null; }',
  "else",
  // `read` drops the NULs between variables: the pair is found in their concatenation
  '  has() { while IFS= read -r l || [ -n "$l" ]; do case $l in *"$want"*) return 0 ;; esac; done 2>/dev/null <"$1"; return 1; }',
  '  tagged() { for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do has "$f" && echo "$f"; done; }',
  "fi",
  `while [ $round -lt ${MAX_ROUNDS} ]; do`,
  "  round=$((round + 1)); new=",
  "  for f in $(tagged); do",
  '    p=${f#/proc/}; p=${p%%/*}; [ "$p" = "$me" ] && continue',
  '    case $stopped in *" $p "*) continue ;; esac',
  '    kill -STOP "$p" 2>/dev/null && { stopped="$stopped$p "; new=1; }',
  "  done",
  '  [ -z "$new" ] && break',
  "done",
  '[ "$stopped" = " " ] || kill -KILL $stopped 2>/dev/null',
  "exit 0",
].join("\n");
