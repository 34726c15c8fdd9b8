import { Command } from "commander";
import { connectEnv } from "../../environment/connect-env.js";
import type { OutputFactory } from "../output.js";
import { collect, parseArgs, parseJsonObject, parseSeconds } from "../parse-values.js";

export function callCommand(output: OutputFactory): Command {
  return new Command("call")
    .description("call a method of a running environment and print the result as JSON")
    .argument("<name>", "environment name (see afs ls)")
    .argument("<method>", "method name (see afs methods NAME)")
    .option(
      "--arg <key=value>",
      "keyword argument; the value is JSON when it parses (repeatable)",
      collect,
      [],
    )
    .option("--json <object>", "keyword arguments as a JSON object, merged over --arg")
    .option("--timeout <seconds>", "client-side bound of the call", "300")
    .option(
      "--host <host>",
      "a remote Docker host to look at too: ssh://user@host:port or a ~/.ssh/config name (repeatable)",
      collect,
      [],
    )
    .addHelpText("after", "\nExample:\n  afs call calc add --arg a=1 --arg b=2")
    .action(
      async (
        name: string,
        method: string,
        flags: { arg: string[]; json?: string; timeout: string; host: string[] },
      ) => {
        const out = output();
        const kwargs = { ...parseArgs(flags.arg), ...parseJsonObject(flags.json) };
        const timeoutMs = parseSeconds("--timeout", flags.timeout);
        const env = await connectEnv(name, { hosts: flags.host });
        try {
          const result = await env.call(method, kwargs, { timeoutMs });
          out.result(JSON.stringify(result ?? null, null, 2), result ?? null);
        } finally {
          await env.cleanup();
        }
      },
    );
}
