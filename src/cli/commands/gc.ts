import { Command } from "commander";
import { closeAll, searchRuntimes } from "../../runtime/resolve-runtime.js";
import { collect } from "../parse-values.js";
import type { OutputFactory } from "../output.js";

export function gcCommand(output: OutputFactory): Command {
  return new Command("gc")
    .description(
      "remove containers and processes whose owning client died (never those started to outlive it)",
    )
    .option("--host <host>", "a remote Docker host to collect on too (repeatable)", collect, [])
    .action(async (flags: { json?: boolean; host: string[] }) => {
      const out = output(flags);
      const removed: string[] = [];
      const runtimes = await searchRuntimes({ hosts: flags.host });
      try {
        for (const runtime of runtimes) removed.push(...(await runtime.garbageCollect()));
      } finally {
        await closeAll(runtimes);
      }
      out.result(removed.length ? `✓ Removed ${removed.join(", ")}` : "Nothing to collect", { removed });
    });
}
