import { Command } from "commander";
import { statSync } from "node:fs";
import { BACKEND_NAMES, Host, deployProject, runInProject, startJob } from "../../deploy/index.js";
import type { BackendName, Workspace } from "../../deploy/index.js";
import { UsageError } from "../exit-codes.js";
import type { OutputFactory } from "../output.js";
import { collect, parseKeyValues } from "../parse-values.js";

interface DeployFlags {
  host: string;
  key?: string;
  backend: string;
  project?: string;
  root?: string;
  exclude: string[];
  extra: string[];
  env: string[];
  detach?: string;
  json?: boolean;
}

/**
 * `afs deploy PATH --host H [--backend B] -- CMD`: pushes the project (only what changed),
 * prepares its environment and runs CMD there, streaming its output; exits with CMD's
 * exit code. With `--detach NAME`, CMD runs as a detached job instead (`afs jobs`).
 */
export function deployCommand(output: OutputFactory): Command {
  return new Command("deploy")
    .description("push a project to an SSH host, prepare its environment, run a command there")
    .argument("<path>", "the project folder")
    .argument("[command...]", "the command to run there (after --)")
    .requiredOption("--host <host>", "user@host[:port], ssh://user@host[:port] or a ~/.ssh/config name")
    .option("--key <file>", "private key file (default: ~/.ssh/config, then ~/.ssh/id_*)")
    .option("--backend <name>", `${BACKEND_NAMES.join(", ")} or auto`, "auto")
    .option("--project <name>", "the workspace's name (default the folder's name)")
    .option("--root <path>", "where workspaces and jobs live on the host", "~/.affinetes")
    .option("--exclude <pattern>", "leave out files matching (gitignore syntax; repeatable)", collect, [])
    .option("--extra <name>", "uv: an optional dependency group (repeatable)", collect, [])
    .option("--env <KEY=VALUE>", "a variable for the command (repeatable)", collect, [])
    .option("--detach <name>", "run the command as a detached job of this name")
    .action(async (path: string, commandWords: string[], flags: DeployFlags) => {
      const out = output(flags);
      const backend = backendOf(flags.backend);
      const env = parseKeyValues(flags.env, "--env");
      const command = commandWords.join(" ");
      if (flags.detach !== undefined && !command) throw new UsageError("--detach needs a command (after --)");
      if (!statSync(path, { throwIfNoEntry: false })?.isDirectory())
        throw new UsageError(`${path} is not a folder: give the project's folder`);
      const host = await Host.connect(flags.host, flags.key ? { key: flags.key } : {});
      try {
        const progress = out.progress(`deploying ${path} to ${host.label}`);
        let workspace: Workspace;
        try {
          workspace = await deployProject(host, {
            localPath: path,
            backend,
            exclude: flags.exclude,
            extras: flags.extra,
            ...(flags.project ? { project: flags.project } : {}),
            ...(flags.root ? { root: flags.root } : {}),
            onOutput: (line) => out.line(line),
          });
        } finally {
          progress.done();
        }
        const { push, bootstrap } = workspace;
        out.line(
          `${workspace.path}: ${push.sent.length} file(s) sent, ${push.deleted.length} deleted, ${push.unchanged} unchanged; ` +
            `${bootstrap.backend}: ${bootstrap.skipped ? "up to date" : bootstrap.detail}`,
        );
        const summary = { workspace: workspace.path, backend: bootstrap.backend, push, bootstrap };
        if (!command) return out.result(workspace.path, summary);
        if (flags.detach !== undefined) {
          const job = await startJob(host, {
            name: flags.detach,
            command,
            workspace,
            env,
            ...(flags.root ? { root: flags.root } : {}),
          });
          return out.result(`job ${job.name} started (afs jobs logs --host ${flags.host} ${job.name})`, {
            ...summary,
            job: job.name,
          });
        }
        const result = await runInProject(host, workspace, command, {
          env,
          ...(out.json
            ? {}
            : {
                onOutput: (chunk, stream) =>
                  (stream === "stdout" ? process.stdout : process.stderr).write(chunk),
              }),
        });
        if (out.json) out.result("", { ...summary, ...result });
        process.exitCode = result.exitCode;
      } finally {
        host.close();
      }
    });
}

function backendOf(name: string): BackendName | "auto" {
  if (name === "auto" || (BACKEND_NAMES as readonly string[]).includes(name))
    return name as BackendName | "auto";
  throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(", ")} or auto`);
}
