import { Command } from "commander";
import { closeAll, searchRuntimes } from "../../runtime/resolve-runtime.js";
import { collect } from "../parse-values.js";
import type { InstanceInfo } from "../../runtime/instance.js";
import type { OutputFactory } from "../output.js";
import { duration, table } from "../output.js";

export function lsCommand(output: OutputFactory): Command {
  return new Command("ls")
    .description("list the environments affinetes started (any client), with their instances")
    .option(
      "--host <host>",
      "a remote Docker host to look at too: ssh://user@host:port or a ~/.ssh/config name (repeatable)",
      collect,
      [],
    )
    .action(async (flags: { json?: boolean; host: string[] }) => {
      const out = output(flags);
      const infos: InstanceInfo[] = [];
      const runtimes = await searchRuntimes({ hosts: flags.host });
      try {
        for (const runtime of runtimes) {
          infos.push(...(await runtime.list()));
        }
      } finally {
        await closeAll(runtimes);
      }
      infos.sort(
        (a, b) => a.pool.localeCompare(b.pool) || a.name.localeCompare(b.name, "en", { numeric: true }),
      );
      const now = Date.now();
      const rows = infos.map((i) => [
        i.pool,
        i.name,
        i.runtime,
        i.host,
        i.image,
        i.state,
        i.endpoint ?? "-",
        i.state === "running" ? duration(now - i.createdAt.getTime()) : "-",
      ]);
      const human = rows.length
        ? table(["NAME", "INSTANCE", "MODE", "HOST", "IMAGE", "STATUS", "ENDPOINT", "UPTIME"], rows)
        : "No environments. Start one with: afs run IMAGE (or afs run --dir PATH)";
      out.result(human, infos);
    });
}
