import { Command } from "commander";
import { NotFoundError } from "../../errors.js";
import { runningEnvironmentNames } from "../../environment/connect-env.js";
import { closeAll, searchRuntimes } from "../../runtime/resolve-runtime.js";
import { collect } from "../parse-values.js";
import { UsageError } from "../exit-codes.js";
import type { OutputFactory } from "../output.js";

export function stopCommand(output: OutputFactory): Command {
  return new Command("stop")
    .description("stop and remove an environment (all its instances), or all of them")
    .argument("[name]", "environment name")
    .option("--all", "every environment affinetes started on this machine (and the --host ones)")
    .option(
      "--host <host>",
      "a remote Docker host to look at too: ssh://user@host:port or a ~/.ssh/config name (repeatable)",
      collect,
      [],
    )
    .action(async (name: string | undefined, flags: { all?: boolean; json?: boolean; host: string[] }) => {
      const out = output(flags);
      if ((name === undefined) === !flags.all) throw new UsageError("give an environment NAME or --all");
      const removed: string[] = [];
      const runtimes = await searchRuntimes({ hosts: flags.host });
      try {
        for (const runtime of runtimes) removed.push(...(await runtime.removeAll(name)));
      } finally {
        await closeAll(runtimes);
      }
      if (name !== undefined && removed.length === 0) {
        const running = await runningEnvironmentNames({ hosts: flags.host });
        throw new NotFoundError(
          "environment",
          name,
          `Environment not found: ${name}.${running.length ? ` Running: ${running.join(", ")}` : ""}`,
        );
      }
      out.result(removed.length ? `✓ Stopped ${removed.join(", ")}` : "Nothing to stop", { removed });
    });
}
