import { Command } from "commander";
import { runtimesFor } from "../../environment/connect-env.js";
import type { OutputFactory } from "../output.js";

export function gcCommand(output: OutputFactory): Command {
  return new Command("gc")
    .description(
      "remove containers and processes whose owning client died (never those started to outlive it)",
    )
    .action(async (flags: { json?: boolean }) => {
      const out = output(flags);
      const removed: string[] = [];
      for (const runtime of await runtimesFor({})) removed.push(...(await runtime.garbageCollect()));
      out.result(removed.length ? `✓ Removed ${removed.join(", ")}` : "Nothing to collect", { removed });
    });
}
