import { CommandError, ValidationError } from "../errors.js";
import type { ExecResult } from "../host/command.js";
import { Deadline } from "../util/deadline.js";
import type { OperationOptions } from "../util/deadline.js";
import { shellQuote } from "../util/shell-quote.js";
import type { BackendName, BootstrapReport } from "./bootstrap/index.js";
import { OWNER_LABEL } from "./bootstrap/docker-backend.js";
import { bootstrapBackend, detectBackend } from "./bootstrap/index.js";
import { withinDeadline } from "./bootstrap/remote-command.js";
import type { Host } from "../host/host.js";
import type { PushOptions, PushReport } from "./push.js";
import { pushProject } from "./push.js";

/** A project copied to a host and prepared there: where, and how its commands run. */
export class Workspace {
  constructor(
    /** The host it lives on (`ssh://user@host:port`). */
    readonly host: string,
    /** Absolute path of the workspace on the host. */
    readonly path: string,
    readonly project: string,
    readonly backend: BackendName,
    /** What the last push sent. */
    readonly push: PushReport,
    /** What the bootstrap did. */
    readonly bootstrap: BootstrapReport,
  ) {}

  /** A shell command line running `command` in the workspace's environment. */
  wrap(command: string, env?: Readonly<Record<string, string>>): string {
    return bootstrapBackend(this.backend).wrap(command, this.path, env);
  }

  /** The path: `${ws}/results` names a folder in the workspace. */
  toString(): string {
    return this.path;
  }
}

/** Options of `deployProject`. */
export interface DeployOptions extends PushOptions {
  /** How to prepare the environment; default `auto` (see `detectBackend`). */
  backend?: BackendName | "auto";
  /** uv: optional dependency groups (`uv sync --extra X`). */
  extras?: readonly string[];
  /** Receives the bootstrap's output, line by line. */
  onOutput?: (line: string) => void;
}

/**
 * Makes a host a working copy of a local project: pushes its files (only what changed
 * since the last push) into `<root>/workspaces/<project>` and prepares its environment
 * with a bootstrap backend (npm, venv, uv, docker or none).
 */
export async function deployProject(host: Host, options: DeployOptions): Promise<Workspace> {
  const deadline = new Deadline("deploy", options);
  return withinDeadline(deadline, () => deploySteps(host, options, deadline));
}

async function deploySteps(host: Host, options: DeployOptions, deadline: Deadline): Promise<Workspace> {
  const backendName = options.backend ?? "auto";
  if (backendName !== "auto") bootstrapBackend(backendName); // a bad name fails before anything travels
  const push = await pushProject(host, { ...options, ...deadlineOptions(deadline) });
  const name = backendName === "auto" ? await detectBackend(host, push.workspace) : backendName;
  const backend = bootstrapBackend(name);
  const project = push.workspace.split("/").pop() ?? "project";
  const bootstrap = await backend.prepare(host, push.workspace, {
    project,
    ...deadlineOptions(deadline),
    ...(options.extras ? { extras: options.extras } : {}),
    ...(options.onOutput ? { onOutput: options.onOutput } : {}),
  });
  return new Workspace(host.label, push.workspace, project, name, push, bootstrap);
}

/** Options of `runInProject`. */
export interface RunOptions extends OperationOptions {
  env?: Readonly<Record<string, string>>;
  /** Throw `CommandError` on a non-zero exit instead of returning the result. */
  check?: boolean;
  /** Receives output as it is written (the result still holds all of it). */
  onOutput?: (chunk: string, stream: "stdout" | "stderr") => void;
  /** Cap of each of stdout and stderr kept in the result (default 10 MiB; past it head and tail are kept). */
  maxOutputBytes?: number;
}

/**
 * Runs a command in a workspace's environment (a `Workspace` from `deployProject`, or a
 * path on the host: then with a plain shell). A non-zero exit is a result, not an error,
 * unless `check`.
 */
export async function runInProject(
  host: Host,
  workspace: Workspace | string,
  command: string,
  options: RunOptions = {},
): Promise<ExecResult> {
  if (!command.trim()) throw new ValidationError("command", "is empty");
  const result =
    workspace instanceof Workspace
      ? await streamed(host, workspace.wrap(command, options.env), options, { backend: workspace.backend })
      : await streamed(host, command, options, {
          cwd: await host.resolvePath(workspace),
          ...(options.env ? { env: options.env } : {}),
        });
  if (options.check && result.exitCode !== 0)
    throw new CommandError(command, result.exitCode, result.stdout, result.stderr);
  return result;
}

/** Options of `deployAndRun`. */
export interface DeployAndRunOptions extends DeployOptions {
  command: string;
  env?: Readonly<Record<string, string>>;
  /** Throw `CommandError` on a non-zero exit. */
  check?: boolean;
  /** Receives the command's output as it is written. */
  onCommandOutput?: (chunk: string, stream: "stdout" | "stderr") => void;
}

/** `deployProject`, then `runInProject` of `command`: the workspace and the command's result. */
export async function deployAndRun(
  host: Host,
  options: DeployAndRunOptions,
): Promise<ExecResult & { workspace: Workspace }> {
  if (!options.command?.trim()) throw new ValidationError("command", "is empty");
  const deadline = new Deadline("deploy and run", options);
  return withinDeadline(deadline, async () => {
    const workspace = await deploySteps(host, options, deadline);
    const result = await runInProject(host, workspace, options.command, {
      ...deadlineOptions(deadline),
      ...(options.env ? { env: options.env } : {}),
      ...(options.check ? { check: true } : {}),
      ...(options.onCommandOutput ? { onOutput: options.onCommandOutput } : {}),
    });
    return { ...result, workspace };
  });
}

/**
 * Runs a command line with its output streamed to `onOutput` and kept (capped) for the
 * result. In a docker workspace, a command the deadline ends also loses the containers
 * it ran (killing a `docker run` client leaves its container running).
 */
function streamed(
  host: Host,
  line: string,
  options: RunOptions,
  where: { cwd?: string; env?: Readonly<Record<string, string>>; backend?: BackendName } = {},
): Promise<ExecResult> {
  const { check: _check, env: _env, ...run } = options;
  const { backend, ...place } = where;
  const cleanup = (tag: string) => host.exec(removeContainersOf(tag), { timeoutMs: CLEANUP_TIMEOUT_MS });
  return host.exec(line, { ...run, ...place, ...(backend === "docker" ? { onKill: cleanup } : {}) });
}

const CLEANUP_TIMEOUT_MS = 30_000;

/** Removes the containers a docker workspace's command ran (labelled with its tag, see `DockerBackend.wrap`). */
function removeContainersOf(tag: string): string {
  const filter = shellQuote(`label=${OWNER_LABEL}=${tag}`);
  return `docker ps -aq --filter ${filter} | xargs -r docker rm -f >/dev/null 2>&1; true`;
}

/** The `{ signal }` of a deadline, for the steps of an operation that share it. */
function deadlineOptions(deadline: Deadline): { signal?: AbortSignal } {
  return deadline.signal ? { signal: deadline.signal } : {};
}
