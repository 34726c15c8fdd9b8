import { Command } from "commander";
import { runtimesFor } from "../../environment/connect-env.js";
import type { InstanceInfo } from "../../runtime/instance.js";
import type { OutputFactory } from "../output.js";
import { duration, table } from "../output.js";

export function lsCommand(output: OutputFactory): Command {
  return new Command("ls")
    .description("list the environments affinetes started (any client), with their instances")
    .action(async (flags: { json?: boolean }) => {
      const out = output(flags);
      const infos: InstanceInfo[] = [];
      for (const runtime of await runtimesFor({})) infos.push(...(await runtime.list()));
      infos.sort(
        (a, b) => a.pool.localeCompare(b.pool) || a.name.localeCompare(b.name, "en", { numeric: true }),
      );
      const now = Date.now();
      const rows = infos.map((i) => [
        i.pool,
        i.name,
        i.runtime,
        i.image,
        i.state,
        i.endpoint ?? "-",
        i.state === "running" ? duration(now - i.createdAt.getTime()) : "-",
      ]);
      const human = rows.length
        ? table(["NAME", "INSTANCE", "MODE", "IMAGE", "STATUS", "ENDPOINT", "UPTIME"], rows)
        : "No environments. Start one with: afs run IMAGE (or afs run --dir PATH)";
      out.result(human, infos);
    });
}
