import { randomUUID } from "node:crypto";
import { shellQuote } from "../util/shell-quote.js";
import { COMMAND_TAG_VARIABLE, KILL_TAGGED_SCRIPT, tagCommand } from "../util/tagged-processes.js";
import type { ExecOptions } from "./command.js";
import { wrapCommand } from "./shell-line.js";
import type { SshConnection } from "./ssh-connection.js";
import type { StartedCommand } from "./started-command.js";
import { collectCommand } from "./started-command.js";

/**
 * Starts a command over the host's SSH connection (through the login user's shell, `cwd`
 * and `env` applied), every process of it tagged. sshd neither acts on a channel's KILL
 * signal nor ends the channel before the command exits, so its tree is ended by a second
 * command over the same connection (see `killTaggedScript`).
 */
export async function startSsh(
  connection: SshConnection,
  command: string,
  options: Pick<ExecOptions, "cwd" | "env">,
): Promise<StartedCommand> {
  const tag = randomUUID();
  const channel = await connection.open(tagCommand(tag, wrapCommand(command, options)));
  // one channel is the command's stdin, stdout and end at once: pipelines on both sides listen to it
  channel.setMaxListeners(32);
  // sshd reports the exit status when the shell exits, before its output closes
  let exit = (_code: number) => {};
  const exited = new Promise<number>((resolve) => (exit = resolve));
  channel.once("exit", (code: number | null) => exit(code ?? -1));
  const closed = new Promise<void>((resolve) =>
    channel.once("close", () => {
      exit(-1);
      resolve();
    }),
  );
  return {
    tag,
    stdin: channel,
    stdout: channel,
    stderr: channel.stderr,
    exited,
    closed,
    killTree: async () => {
      await collectCommand(await startSsh(connection, killTaggedScript(tag), {}), {});
    },
    release: () => channel.close(), // also frees the session slot a background process would hold
  };
}

/**
 * Kills, on the host (Linux: /proc), a tagged command: its processes, found by the tag in
 * their environment or command line (see `KILL_TAGGED_SCRIPT`: stopped, then killed, so
 * none forks away meanwhile), then whatever is left in their sessions.
 */
function killTaggedScript(tag: string): string {
  return [
    // the pair is never spelled out in a command line here: the kill would find itself
    `n=${COMMAND_TAG_VARIABLE}; v=${shellQuote(tag)}; me=$(ps -o sid= -p $$ | tr -d ' ');`,
    // GNU grep: -z reads NUL-separated variables
    `pids=$(printf '%s=%s\\n' "$n" "$v" | grep -lzFf - /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | sed 's#/proc/##; s#/[a-z]*$##' | sort -u);`,
    `sessions=$([ -n "$pids" ] && ps -o sid= -p "$(echo $pids | tr ' ' ,)" | sort -u);`,
    `sh -c ${shellQuote(KILL_TAGGED_SCRIPT)} sh "$n" "$v";`,
    // what dropped the tag but stayed in a session of the command's
    `for s in $sessions; do [ "$s" -gt 1 ] && [ "$s" != "$me" ] && pkill -KILL -s "$s"; done; true`,
  ].join(" ");
}
