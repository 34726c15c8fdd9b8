import { Command } from "commander";
import { connectEnv } from "../../environment/connect-env.js";
import type { OutputFactory } from "../output.js";

export function methodsCommand(output: OutputFactory): Command {
  return new Command("methods")
    .description("list the methods of a running environment, with their signatures")
    .argument("<name>", "environment name")
    .action(async (name: string, flags: { json?: boolean }) => {
      const out = output(flags);
      const env = await connectEnv(name);
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
