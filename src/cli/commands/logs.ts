import { Command } from "commander";
import { connectEnv } from "../../environment/connect-env.js";
import type { Instance } from "../../runtime/instance.js";
import type { OutputFactory } from "../output.js";
import { collect, parsePositiveInt } from "../parse-values.js";

export function logsCommand(output: OutputFactory): Command {
  return new Command("logs")
    .description("print the output of an environment's instances")
    .argument("<name>", "environment name")
    .option("-f, --follow", "keep printing new output until interrupted")
    .option("--tail <n>", "only the last N lines of each instance")
    .option(
      "--host <host>",
      "a remote Docker host to look at too: ssh://user@host:port or a ~/.ssh/config name (repeatable)",
      collect,
      [],
    )
    .action(
      async (name: string, flags: { follow?: boolean; tail?: string; json?: boolean; host: string[] }) => {
        output(flags);
        const tail = flags.tail !== undefined ? parsePositiveInt("--tail", flags.tail) : undefined;
        const env = await connectEnv(name, { hosts: flags.host });
        const prefix = (instance: Instance) => (env.replicas > 1 ? `[${instance.name}] ` : "");
        try {
          if (flags.follow) {
            await Promise.all(env.instances.map((i) => follow(i, prefix(i), tail)));
            return;
          }
          for (const instance of env.instances) {
            process.stdout.write(
              withPrefix(await instance.logs(tail !== undefined ? { tail } : {}), prefix(instance)),
            );
          }
        } finally {
          await env.cleanup();
        }
      },
    );
}

async function follow(instance: Instance, prefix: string, tail: number | undefined): Promise<void> {
  for await (const text of instance.followLogs(tail !== undefined ? { tail } : {})) {
    process.stdout.write(withPrefix(text, prefix));
  }
}

function withPrefix(text: string, prefix: string): string {
  if (!prefix || !text) return text;
  return text.replace(/^(?=.)/gm, prefix);
}
