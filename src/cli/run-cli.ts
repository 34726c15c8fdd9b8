import { readFileSync } from "node:fs";
import { CommanderError } from "commander";
import { exitCodeFor } from "./exit-codes.js";
import { buildProgram } from "./program.js";

/**
 * Runs the `afs` program on `args` (without node and script), reporting errors as one
 * line (a stack trace with --debug) and setting the exit code from the error.
 */
export async function runCli(args: readonly string[]): Promise<void> {
  const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  const program = buildProgram(version);
  try {
    await program.parseAsync(["node", "afs", ...args]);
  } catch (error) {
    process.exitCode = exitCodeFor(error);
    // commander has already printed its own usage errors (and --help / --version output)
    if (!(error instanceof CommanderError))
      report(error, program.opts<{ debug?: boolean; json?: boolean }>());
  }
}

function report(error: unknown, flags: { debug?: boolean; json?: boolean }): void {
  const err = error instanceof Error ? error : new Error(String(error));
  const code = (err as { code?: unknown }).code;
  if (flags.json) {
    process.stderr.write(`${JSON.stringify({ error: err.name, code, message: err.message })}\n`);
  } else {
    process.stderr.write(`afs: ${err.message}\n`);
  }
  if (flags.debug && err.stack) process.stderr.write(`${err.stack}\n`);
}
