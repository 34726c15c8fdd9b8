import { Command, Option } from "commander";
import { buildImageFromEnv } from "../../image/build-image.js";
import { readEnvFolder } from "../../runtime/env-folder.js";
import { loadEnv } from "../../environment/load-env.js";
import type { LoadEnvOptions } from "../../environment/load-env.js";
import { resolveRuntimeKind } from "../../runtime/resolve-runtime.js";
import { UsageError } from "../exit-codes.js";
import type { Output, OutputFactory } from "../output.js";
import { collect, parseKeyValues, parsePositiveInt, readDotEnv } from "../parse-values.js";

interface RunFlags {
  dir?: string;
  tag?: string;
  cache: boolean;
  name?: string;
  env: string[];
  pull?: boolean;
  memLimit?: string;
  cpuLimit?: string;
  replicas?: string;
  mode?: string;
  loadBalance?: string;
  host: string[];
  sbatchArg: string[];
  network?: string;
  json?: boolean;
}

export function runCommand(output: OutputFactory): Command {
  return new Command("run")
    .description("start an environment from an image or a folder; it keeps running after this command")
    .argument("[image]", "image to run")
    .option("--dir <path>", "environment folder: built into an image (docker) or run as a process")
    .option("--tag <tag>", "image tag when building --dir (default affinetes-env/<folder>:latest)")
    .option("--no-cache", "build without Docker's layer cache")
    .option("--name <name>", "environment name (replicas are <name>-0 .. <name>-N)")
    .option(
      "-e, --env <KEY=VALUE>",
      "environment variable (repeatable; .env in the current folder is read too)",
      collect,
      [],
    )
    .option("--pull", "pull the image first (falls back to the local one)")
    .option("--mem-limit <size>", 'memory limit per instance, e.g. "512m", "1g"')
    .option("--cpu-limit <cores>", "CPU limit per instance, e.g. 1.5")
    .option("--replicas <n>", "number of instances")
    .option("--mode <mode>", "docker, process or slurm (default: docker when an engine answers)")
    .option(
      "--sbatch-arg <arg>",
      "sbatch argument of mode slurm, e.g. --sbatch-arg=--time=1:00:00 (repeatable)",
      collect,
      [],
    )
    .addOption(
      new Option("--load-balance <strategy>", "how calls pick a replica").choices([
        "random",
        "round_robin",
        "least_busy",
      ]),
    )
    .option(
      "--network <policy>",
      "what the instances may reach: full (default), none, or an allowlist HOST_OR_CIDR[:PORT],...",
    )
    .option(
      "--host <host>",
      "Docker host for the replicas, in turn: localhost, ssh://user@host:port or a ~/.ssh/config name (repeatable)",
      collect,
      [],
    )
    .addHelpText(
      "after",
      "\nExamples:\n  afs run calculator:latest --name calc\n  afs run --dir examples/calculator --mode process --name calc\n  afs run calculator:latest --mode slurm --replicas 2 --sbatch-arg=--time=2:00:00",
    )
    .action(async (image: string | undefined, flags: RunFlags) => run(output(flags), image, flags));
}

async function run(out: Output, image: string | undefined, flags: RunFlags): Promise<void> {
  if ((image === undefined) === (flags.dir === undefined))
    throw new UsageError("give an IMAGE or --dir PATH (one of them)");
  if (flags.mode !== undefined && !["docker", "process", "slurm"].includes(flags.mode)) {
    throw new UsageError(`--mode must be docker, process or slurm, got ${flags.mode}`);
  }
  if (flags.sbatchArg.length && flags.mode !== "slurm")
    throw new UsageError("--sbatch-arg needs --mode slurm");
  const envVars = { ...readDotEnv(process.cwd()), ...parseKeyValues(flags.env, "--env") };
  const options: LoadEnvOptions = {
    envVars,
    cleanup: false,
    ...(flags.name !== undefined ? { containerName: flags.name } : {}),
    ...(flags.pull ? { pull: true } : {}),
    ...(flags.memLimit !== undefined ? { memLimit: flags.memLimit } : {}),
    ...(flags.cpuLimit !== undefined ? { cpuLimit: flags.cpuLimit } : {}),
    ...(flags.replicas !== undefined ? { replicas: parsePositiveInt("--replicas", flags.replicas) } : {}),
    ...(flags.loadBalance !== undefined
      ? { loadBalance: flags.loadBalance as LoadEnvOptions["loadBalance"] }
      : {}),
    ...(flags.host.length ? { hosts: flags.host } : {}),
    ...(flags.sbatchArg.length ? { slurm: { sbatchArgs: flags.sbatchArg } } : {}),
    ...(flags.network !== undefined ? { network: networkFlag(flags.network) } : {}),
    onProgress: (line: string) => out.line(line),
  };
  const mode = await resolveRuntimeKind({
    mode: flags.mode as LoadEnvOptions["mode"],
    image: image !== undefined,
  });
  if (image !== undefined) {
    options.image = image;
    options.mode = mode;
  } else if (mode === "process" || mode === "slurm") {
    options.envPath = flags.dir;
    options.mode = mode;
  } else {
    options.image = await build(out, flags);
    options.mode = "docker";
  }
  const spinner = out.progress(`starting ${options.image ?? options.envPath} (${options.mode})`);
  let env;
  try {
    env = await loadEnv(options);
  } finally {
    spinner.done();
  }
  const methods = await env.listMethods();
  await env.cleanup(); // closes connections; the instances keep running
  const name = env.name;
  const human = [
    `✓ Environment started: ${name} (${env.mode}, ${env.replicas} replica${env.replicas > 1 ? "s" : ""}, ${env.endpoint})`,
    "  methods:",
    ...methods.map((m) => `    ${m.name}${m.signature}`),
    `  call it: afs call ${name} ${methods[0]?.name ?? "<method>"} --arg key=value`,
    `  stop it: afs stop ${name}`,
  ].join("\n");
  out.result(human, {
    name,
    mode: env.mode,
    replicas: env.replicas,
    instances: env.instances.map((i) => ({ id: i.id, name: i.name, endpoint: i.endpoint() })),
    methods,
  });
}

async function build(out: Output, flags: RunFlags): Promise<string> {
  const folder = await readEnvFolder(flags.dir as string);
  const imageTag = flags.tag ?? `affinetes-env/${folder.name}:latest`;
  out.line(`building ${imageTag} from ${folder.path}`);
  return buildImageFromEnv({
    envPath: folder.path,
    imageTag,
    nocache: !flags.cache,
    quiet: true,
    onProgress: (line) => out.line(`  ${line}`),
  });
}

/** `--network`: `none`, `full`, or a comma-separated allowlist (validated by loadEnv). */
function networkFlag(value: string): NonNullable<LoadEnvOptions["network"]> {
  if (value === "none" || value === "full") return value;
  return { allow: value.split(",").map((entry) => entry.trim()) };
}
