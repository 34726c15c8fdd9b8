/**
 * `affinetes/deploy`: any machine reachable over SSH becomes a working copy of a project
 * in one call, runs long jobs that survive disconnects, and gives results back.
 */
import { Workspace } from "./deploy.js";
import type { Host } from "../host/host.js";
import type { Job, StartJobOptions as RawStartJobOptions } from "./jobs.js";
import { startJob as startRawJob } from "./jobs.js";

// The one host class of affinetes (also `SshHost` in the main entry); `RemoteProcess` is `HostProcess`.
export { Host } from "../host/host.js";
export type { HostOptions } from "../host/ssh-connection.js";
export type {
  HostExecOptions,
  HostProcess,
  HostProcess as RemoteProcess,
  SpawnOptions,
} from "../host/command.js";
export type { RemoteStat } from "../host/host-files.js";
export { Workspace, deployAndRun, deployProject, runInProject } from "./deploy.js";
export type { DeployAndRunOptions, DeployOptions, RunOptions } from "./deploy.js";
export { pushProject } from "./push.js";
export type { PushOptions, PushReport } from "./push.js";
export { syncResults } from "./sync-results.js";
export type { SyncOptions, SyncReport } from "./sync-results.js";
export { Job, getJob, listJobs } from "./jobs.js";
export type { JobInfo, JobState, JobsOptions } from "./jobs.js";
export { runOnHosts } from "./multi-node.js";
export type { MultiNodeOptions, RankResult } from "./multi-node.js";
export { BACKEND_NAMES, bootstrapBackend, detectBackend } from "./bootstrap/index.js";
export type { BackendName, BootstrapBackend, BootstrapOptions, BootstrapReport } from "./bootstrap/index.js";
export type { ExecResult } from "../host/command.js";

/** Options of `startJob`: the workspace may be a deployed `Workspace` (its environment then applies). */
export interface StartJobOptions extends Omit<RawStartJobOptions, "workspace"> {
  workspace?: Workspace | string;
}

/**
 * Starts a detached job (tmux on the host; it survives this connection): in a deployed
 * workspace's environment (venv, npm, docker...) when given one.
 */
export function startJob(host: Host, options: StartJobOptions): Promise<Job> {
  const { workspace, ...rest } = options;
  if (workspace instanceof Workspace) {
    return startRawJob(host, {
      ...rest,
      runAs: workspace.wrap(options.command, options.env),
      workspace: workspace.path,
    });
  }
  return startRawJob(host, { ...rest, ...(workspace !== undefined ? { workspace } : {}) });
}
