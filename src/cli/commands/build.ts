import { Command } from "commander";
import { buildImageFromEnv } from "../../image/build-image.js";
import type { OutputFactory } from "../output.js";
import { collect, parseKeyValues } from "../parse-values.js";

export function buildCommand(output: OutputFactory): Command {
  return new Command("build")
    .description("build an environment folder into an image (two stages: yours, then the method server)")
    .argument("<dir>", "environment folder")
    .requiredOption("--tag <tag>", "image tag, e.g. calculator:latest")
    .option("--build-arg <KEY=VALUE>", "build argument for your Dockerfile (repeatable)", collect, [])
    .option("--no-cache", "build without Docker's layer cache")
    .action(
      async (dir: string, flags: { tag: string; buildArg: string[]; cache: boolean; json?: boolean }) => {
        const out = output(flags);
        const tag = await buildImageFromEnv({
          envPath: dir,
          imageTag: flags.tag,
          buildargs: parseKeyValues(flags.buildArg, "--build-arg"),
          nocache: !flags.cache,
          quiet: true,
          onProgress: (line) => out.line(line),
        });
        out.result(`✓ Built ${tag}`, { image: tag });
      },
    );
}
