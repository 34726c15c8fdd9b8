import { Command } from "commander";
import { buildCommand } from "./commands/build.js";
import { callCommand } from "./commands/call.js";
import { coloniesCommand } from "./commands/colonies.js";
import { deployCommand } from "./commands/deploy.js";
import { gcCommand } from "./commands/gc.js";
import { initCommand } from "./commands/init.js";
import { jobsCommand } from "./commands/jobs.js";
import { logsCommand } from "./commands/logs.js";
import { lsCommand } from "./commands/ls.js";
import { methodsCommand } from "./commands/methods.js";
import { pollCommand } from "./commands/poll.js";
import { runCommand } from "./commands/run.js";
import { stopCommand } from "./commands/stop.js";
import { serveCommand } from "./commands/serve.js";
import type { Output } from "./output.js";
import { createOutput } from "./output.js";

/** The `afs` program: commander parses, each command lives in its own file. */
export function buildProgram(version: string): Command {
  const program = new Command("afs")
    .description("affinetes: run sandboxed environments and call their methods")
    .version(version)
    .option("--json", "machine-readable output (one JSON document on stdout)")
    .option("--debug", "show stack traces of errors")
    .showHelpAfterError("(add --help for usage)")
    // Program options only before the command: `afs call NAME M --json '{...}'` passes
    // kwargs, while `afs --json ls` and `afs ls --json` both ask for JSON output.
    .enablePositionalOptions()
    .exitOverride();
  const output = (flags: { json?: unknown } = {}): Output =>
    createOutput(flags.json === true || program.opts<{ json?: boolean }>().json === true);
  for (const command of [
    runCommand(output),
    callCommand(output),
    lsCommand(output),
    methodsCommand(output),
    logsCommand(output),
    stopCommand(output),
    buildCommand(output),
    initCommand(output),
    gcCommand(output),
    serveCommand(output),
    coloniesCommand(output),
    pollCommand(output),
    deployCommand(output),
    jobsCommand(output),
  ]) {
    // (groups' subcommands take their own --json)
    if (command.name() !== "call" && command.commands.length === 0)
      command.option("--json", "machine-readable output (one JSON document on stdout)");
    for (const sub of command.commands) sub.exitOverride(); // command groups (afs colonies ...)
    program.addCommand(command.exitOverride());
  }
  return program;
}
