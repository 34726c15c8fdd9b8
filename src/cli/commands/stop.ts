import { Command } from "commander";
import { NotFoundError } from "../../errors.js";
import { runningEnvironmentNames, runtimesFor } from "../../environment/connect-env.js";
import { UsageError } from "../exit-codes.js";
import type { OutputFactory } from "../output.js";

export function stopCommand(output: OutputFactory): Command {
  return new Command("stop")
    .description("stop and remove an environment (all its instances), or all of them")
    .argument("[name]", "environment name")
    .option("--all", "every environment affinetes started on this machine")
    .action(async (name: string | undefined, flags: { all?: boolean; json?: boolean }) => {
      const out = output(flags);
      if ((name === undefined) === !flags.all) throw new UsageError("give an environment NAME or --all");
      const removed: string[] = [];
      for (const runtime of await runtimesFor({})) removed.push(...(await runtime.removeAll(name)));
      if (name !== undefined && removed.length === 0) {
        const running = await runningEnvironmentNames();
        throw new NotFoundError(
          "environment",
          name,
          `Environment not found: ${name}.${running.length ? ` Running: ${running.join(", ")}` : ""}`,
        );
      }
      out.result(removed.length ? `✓ Stopped ${removed.join(", ")}` : "Nothing to stop", { removed });
    });
}
