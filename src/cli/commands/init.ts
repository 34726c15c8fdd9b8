import { Command } from "commander";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { validateInstanceName } from "../../runtime/instance-name.js";
import { UsageError } from "../exit-codes.js";
import type { OutputFactory } from "../output.js";
import { templateFiles } from "../templates.js";

export function initCommand(output: OutputFactory): Command {
  return new Command("init")
    .description("write a new environment folder from a template that runs as is")
    .argument("<name>", "folder (and environment) name")
    .option("--type <type>", "function (env.py functions and an Actor) or http (a FastAPI app)", "function")
    .action(async (name: string, flags: { type: string; json?: boolean }) => {
      const out = output(flags);
      if (flags.type !== "function" && flags.type !== "http") {
        throw new UsageError(`--type must be function or http, got ${flags.type}`);
      }
      validateInstanceName(name, "name");
      const dir = resolve(name);
      const existing = await readdir(dir).catch(() => undefined);
      if (existing && existing.length) throw new UsageError(`${dir} exists and is not empty`);
      await mkdir(dir, { recursive: true });
      const files = templateFiles(name, flags.type);
      for (const [file, content] of Object.entries(files)) await writeFile(join(dir, file), content);
      out.result(
        [`✓ Created ${dir} (${flags.type})`, `  next: afs run --dir ${name} --name ${name}`].join("\n"),
        { dir, type: flags.type, files: Object.keys(files) },
      );
    });
}
