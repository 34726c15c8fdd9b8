import { posix } from "node:path";
import { NotFoundError, UnsupportedError } from "../../errors.js";
import { Deadline } from "../../util/deadline.js";
import type { Host } from "../../host/host.js";
import type { BootstrapBackend, BootstrapOptions, BootstrapReport } from "./bootstrap-backend.js";
import { clearMarker, readMarker, writeMarker } from "./marker.js";
import type { CommandOutput } from "./remote-command.js";
import { runQuiet, runStreaming, withinDeadline } from "./remote-command.js";

/** What a backend's steps get: the host, the workspace and helpers bound to the run's deadline. */
export interface PrepareContext {
  readonly host: Host;
  /** The workspace, `~/` resolved. */
  readonly workspace: string;
  readonly options: BootstrapOptions;
  readonly deadline: Deadline;
  /** Runs an install command in the workspace, its output streamed to `onOutput`. */
  run(command: string, env?: Readonly<Record<string, string>>): Promise<CommandOutput>;
  /** Runs a short command in the workspace and returns its stdout. */
  query(command: string, options?: { maxOutputBytes?: number }): Promise<string>;
  /** A workspace file's content (`name` relative to the workspace); undefined when missing. */
  read(name: string): Promise<Buffer | undefined>;
  /** Whether a path relative to the workspace exists. */
  exists(name: string): Promise<boolean>;
}

/** What a backend found its environment is made from. */
export interface Inputs {
  /** Fingerprint of everything the environment is made from (and of the tools making it). */
  fingerprint: string;
}

/** The steps that make one backend's environment; `I` is what `inspect` found. */
export interface Preparation<I extends Inputs> {
  /** Reads the inputs. */
  inspect(ctx: PrepareContext): Promise<I>;
  /** Whether what the last run made is still there (a deleted `.venv` or image forces a new run). */
  present(ctx: PrepareContext, inputs: I): Promise<boolean>;
  /**
   * Makes the environment. Returns its description and, when the install itself changed
   * an input (e.g. wrote a lockfile), the fingerprint to record instead of the one inspected.
   */
  install(ctx: PrepareContext, inputs: I): Promise<{ detail: string; fingerprint?: string }>;
}

/**
 * The part of `prepare` every backend shares: checks the workspace and the backend,
 * skips when the marker's fingerprint matches and the environment is still there, else
 * installs and records the new marker. The marker is removed before installing, so that
 * an install that fails half-way is never taken for a finished one.
 */
export async function prepareWorkspace<I extends Inputs>(
  backend: BootstrapBackend,
  steps: Preparation<I>,
  host: Host,
  workspace: string,
  options: BootstrapOptions,
): Promise<BootstrapReport> {
  const started = Date.now();
  const deadline = new Deadline(`${backend.name} bootstrap of ${workspace} on ${host.label}`, options);
  const ctx = await context(host, workspace, options, deadline);
  const reason = await withinDeadline(deadline, () => backend.unavailable(host));
  if (reason)
    throw new UnsupportedError(`${backend.name} bootstrap is unavailable on ${host.label}: ${reason}`);
  const inputs = await steps.inspect(ctx);
  const marker = await withinDeadline(deadline, () => readMarker(host, ctx.workspace, backend.name));
  if (marker?.inputs === inputs.fingerprint && (await steps.present(ctx, inputs))) {
    return { backend: backend.name, skipped: true, durationMs: Date.now() - started, detail: marker.detail };
  }
  await withinDeadline(deadline, () => clearMarker(host, ctx.workspace, backend.name));
  const made = await steps.install(ctx, inputs);
  await withinDeadline(deadline, () =>
    writeMarker(host, ctx.workspace, {
      backend: backend.name,
      inputs: made.fingerprint ?? inputs.fingerprint,
      detail: made.detail,
    }),
  );
  return { backend: backend.name, skipped: false, durationMs: Date.now() - started, detail: made.detail };
}

/** The workspace's absolute path (`~/` and relative paths are in the home folder); `NotFoundError` when it is not a folder on the host. */
export async function resolveWorkspace(host: Host, workspace: string, deadline: Deadline): Promise<string> {
  return withinDeadline(deadline, async () => {
    const resolved = await host.resolvePath(workspace);
    // A relative workspace is relative to the home folder, where SSH sessions start.
    const absolute = posix.isAbsolute(resolved) ? resolved : posix.join(await host.home(), resolved);
    const stat = await host.stat(absolute);
    if (!stat?.isDirectory) {
      throw new NotFoundError(
        "workspace",
        `${host.label}:${absolute}`,
        `workspace not found on ${host.label}: ${absolute}`,
      );
    }
    return absolute;
  });
}

async function context(
  host: Host,
  workspace: string,
  options: BootstrapOptions,
  deadline: Deadline,
): Promise<PrepareContext> {
  const absolute = await resolveWorkspace(host, workspace, deadline);
  const path = (name: string) => posix.join(absolute, name);
  return {
    host,
    workspace: absolute,
    options,
    deadline,
    run: (command, env) =>
      runStreaming(host, command, {
        cwd: absolute,
        deadline,
        onOutput: options.onOutput,
        ...(env ? { env } : {}),
      }),
    query: (command, queryOptions) => runQuiet(host, command, { cwd: absolute, deadline, ...queryOptions }),
    read: (name) => withinDeadline(deadline, () => host.readFile(path(name))),
    exists: async (name) => (await withinDeadline(deadline, () => host.stat(path(name)))) !== undefined,
  };
}
