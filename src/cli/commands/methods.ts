import { Command } from "commander";
import { connectEnv } from "../../environment/connect-env.js";
import type { OutputFactory } from "../output.js";
import { collect } from "../parse-values.js";

export function methodsCommand(output: OutputFactory): Command {
  return new Command("methods")
    .description("list the methods of a running environment, with their signatures")
    .argument("<name>", "environment name")
    .option(
      "--host <host>",
      "a remote Docker host to look at too: ssh://user@host:port or a ~/.ssh/config name (repeatable)",
      collect,
      [],
    )
    .action(async (name: string, flags: { json?: boolean; host: string[] }) => {
      const out = output(flags);
      const env = await connectEnv(name, { hosts: flags.host });
      try {
        const methods = await env.listMethods();
        const human =
          methods.map((m) => `${m.name}${m.signature}  [${m.source}]`).join("\n") || "(no methods)";
        out.result(human, methods);
      } finally {
        await env.cleanup();
      }
    });
}
