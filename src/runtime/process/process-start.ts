import { randomBytes } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { UnsupportedError, ValidationError } from "../../errors.js";
import { serverScriptPath } from "../../server/server-files.js";
import { instanceToken } from "../../transport/auth-token.js";
import { makeFolder } from "../../util/make-folder.js";
import { shellQuote } from "../../util/shell-quote.js";
import type { EnvFolder } from "../env-folder.js";
import { readEnvFolder } from "../env-folder.js";
import type { InstanceSpec } from "../instance-spec.js";
import { instanceKind } from "../instance-spec.js";
import { sanitizeName } from "../instance-name.js";
import { KEEP_ALIVE_SCRIPT } from "../keep-alive.js";
import { LABELS, instanceLabels, kindOf } from "../labels.js";
import { networkHolderScript } from "../network-holder-script.js";
import type { PendingInstance, StartDriver } from "../start-sequence.js";
import { waitForNetwork } from "../wait-for-network.js";
import type { IsolationKind } from "./isolation.js";
import { ProcessInstance, exitCodeFile } from "./process-instance.js";
import { serverEnv, spawnLogged, waitForPortFile } from "./process-spawn.js";
import type { ProcessRecord } from "./process-state.js";
import {
  instanceDir,
  processStartTicks,
  readRecord,
  recordIsAlive,
  removeInstanceDir,
  writeRecord,
} from "./process-state.js";
import { relativeToWorkdir } from "./sandbox-cwd.js";
import { launcherEnv } from "./sandbox-env.js";
import type { SandboxFolders } from "./sandbox-folder.js";
import { createSandboxFolders, removeSandboxFolders, runsAsRoot } from "./sandbox-folder.js";
import type { SandboxPlan } from "./sandbox-plan.js";
import { planSandbox } from "./sandbox-plan.js";

const DEFAULT_START_TIMEOUT_MS = 60_000;

/** A task's shell: runs the command (`$1`), then records its exit code in `$2`. */
const TASK_SCRIPT = '/bin/sh -c "$1"; code=$?; echo "$code" > "$2"; exit "$code"';

/** What the process runtime checked of a spec before making anything. */
type Prepared =
  { kind: "serve"; folder: EnvFolder } | { kind: "sandbox"; plan: SandboxPlan } | { kind: "task" };

/** How the process runtime starts things: the python of method servers, the confinement of sandboxes. */
export interface ProcessStartOptions {
  python: string;
  isolation: IsolationKind;
  isolationBinary?: string | undefined;
  imageRoots?: readonly string[] | undefined;
}

/** The process runtime's part of the start sequence: local processes in their own process group. */
export function processStartDriver(options: ProcessStartOptions): StartDriver<Prepared> {
  return {
    kind: "process",
    kinds: ["serve", "sandbox", "task"],
    startTimeoutMs: DEFAULT_START_TIMEOUT_MS,
    newName: (spec) =>
      `${spec.envPath !== undefined && instanceKind(spec) === "serve" ? sanitizeName(basename(resolve(spec.envPath))) : spec.envName}-${randomBytes(4).toString("hex")}`,

    async prepare(spec) {
      const kind = instanceKind(spec);
      if (kind === "sandbox") return { kind, plan: await planSandbox(spec, options.isolation, options) };
      if (spec.network !== undefined && spec.network !== "full") {
        throw new UnsupportedError(
          `the process runtime's ${kind === "serve" ? "method servers" : "tasks"} share the host's network: only network "full" (shell sandboxes hold the others)`,
        );
      }
      if (options.isolation !== "none") {
        throw new UnsupportedError(
          `${options.isolation} isolation confines shell sandboxes (serve: false), not ${kind === "serve" ? "method servers" : "tasks"}`,
        );
      }
      if (kind === "task") return { kind };
      if (!spec.envPath) {
        throw new ValidationError("envPath", "the process runtime runs an environment folder: give envPath");
      }
      return { kind, folder: await readEnvFolder(spec.envPath, spec.envType) };
    },

    async adopt(name, spec, prepared) {
      const record = await readRecord(name);
      if (!record) return undefined;
      const fits =
        recordIsAlive(record) &&
        !spec.forceRecreate &&
        kindOf(record.labels) === prepared.kind &&
        (prepared.kind !== "serve" || record.envPath === prepared.folder.path);
      const instance = new ProcessInstance(record, fits, fits ? spec.envVars : {});
      if (fits)
        return { boot: async () => instance, failure: () => exited(instance), discard: async () => {} };
      await instance.stop(); // a stale record, or another instance of the name
      return undefined;
    },

    async create(name, spec, prepared) {
      if (prepared.kind === "serve") return createServer(name, spec, prepared.folder, options.python);
      if (prepared.kind === "sandbox") return createSandbox(name, spec, prepared.plan);
      return createTask(name, spec);
    },
  };
}

/** The method server for the env folder on 127.0.0.1 and a free port (written to a file once it listens). */
async function createServer(
  name: string,
  spec: InstanceSpec,
  folder: EnvFolder,
  python: string,
): Promise<PendingInstance> {
  await mkdir(instanceDir(name), { recursive: true });
  const portFile = join(instanceDir(name), "port");
  await rm(portFile, { force: true });
  const child = await spawnLogged(name, python, ["-u", serverScriptPath()], {
    cwd: folder.path,
    env: serverEnv(folder, spec, portFile),
  }).catch(async (err: unknown) => {
    await removeInstanceDir(name);
    throw err;
  });
  const record = newRecord(name, spec, child.pid as number, folder.path, {
    envType: folder.envType,
    authToken: instanceToken(spec),
  });
  record.labels[LABELS.envType] = folder.envType;
  const instance = new ProcessInstance(record, false, spec.envVars, child);
  return {
    async boot(deadline) {
      record.port = await waitForPortFile(portFile, deadline, instance);
      await writeRecord(record);
      return instance;
    },
    failure: async () => ((await instance.isRunning()) ? undefined : "the server process exited"),
    discard: () => instance.stop(),
  };
}

/**
 * A shell sandbox: an idle shell in its own process group and working folder (a fresh
 * one under the state dir unless `workdir` is given), driven through `exec`. Confined,
 * its folders are its own (see `createSandboxFolders`) and it gets its own network
 * namespace, held by the idle process; a plain one gets one only for a policy other
 * than `full`. Everything was checked (`planSandbox`) before anything is made.
 */
async function createSandbox(name: string, spec: InstanceSpec, plan: SandboxPlan): Promise<PendingInstance> {
  await mkdir(instanceDir(name), { recursive: true }); // its record and log, whatever the workdir
  let folders: SandboxFolders | undefined;
  let instance: ProcessInstance | undefined;
  const discard = async () => {
    // nothing half-made stays: the holder, its namespace's helpers, the folders, the record
    if (instance) await instance.stop();
    else await removeInstanceDir(name);
    await removeSandboxFolders(folders?.root);
  };
  try {
    folders = plan.isolation
      ? await createSandboxFolders(name, relativeToWorkdir(plan.isolation.cwd), plan.policy.kind !== "none")
      : undefined;
    const workdir = folders?.workdir ?? (await workFolder(name, spec));
    const tag = `${name}:${randomBytes(6).toString("hex")}`;
    // Unless it must outlive us, the shell ends with its client, as the method server does.
    const idle = spec.keep
      ? KEEP_ALIVE_SCRIPT
      : `trap 'kill $! 2>/dev/null; exit 0' TERM INT; while kill -0 ${process.pid} 2>/dev/null; do sleep 1 & wait $!; done`;
    const script = plan.tools
      ? networkHolderScript({
          tools: plan.tools,
          policy: plan.policy,
          rootless: !runsAsRoot(),
          dir: instanceDir(name),
          idle,
          tag: shellQuote(tag),
        })
      : idle;
    const child = await spawnLogged(name, "/bin/sh", ["-c", script], {
      // outside the sandbox, nothing of the request: a PATH there would pick the programs it runs
      cwd: plan.tools ? "/" : workdir,
      env: plan.tools ? launcherEnv(tag) : { ...process.env, ...spec.envVars },
    });
    const record = newRecord(name, spec, child.pid as number, workdir, { tag });
    if (spec.envVars) record.envVars = { ...spec.envVars };
    if (plan.isolation && folders) record.isolation = { ...plan.isolation, folders };
    const started = new ProcessInstance(record, false, spec.envVars, child);
    instance = started;
    return {
      async boot(deadline) {
        if (plan.tools) {
          const pid = await waitForNetwork({
            instance: name,
            dir: instanceDir(name),
            deadline,
            running: () => started.isRunning(),
            logs: () => started.logs({ tail: 20 }),
          });
          record.network = {
            policy: plan.policy.kind,
            pid,
            startTicks: processStartTicks(pid),
            rootless: !runsAsRoot(),
            nsenter: plan.tools.nsenter,
          };
        }
        await writeRecord(record);
        return started;
      },
      failure: () => exited(started),
      discard,
    };
  } catch (err) {
    await discard();
    throw err;
  }
}

/** A task: `sh -c command` in its working folder, its exit code recorded when it ends. */
async function createTask(name: string, spec: InstanceSpec): Promise<PendingInstance> {
  if (spec.task?.command === undefined)
    throw new ValidationError("task.command", "the process runtime runs a task's command: give one");
  await mkdir(instanceDir(name), { recursive: true });
  try {
    const workdir = await workFolder(name, spec);
    const child = await spawnLogged(
      name,
      "/bin/sh",
      ["-c", TASK_SCRIPT, "sh", spec.task.command, exitCodeFile(name)],
      {
        cwd: workdir,
        env: { ...process.env, ...spec.envVars },
      },
    );
    const record = newRecord(name, spec, child.pid as number, workdir, {});
    if (spec.ports?.length) record.ports = [...spec.ports];
    const instance = new ProcessInstance(record, false, spec.envVars, child);
    await writeRecord(record);
    return { boot: async () => instance, failure: async () => undefined, discard: () => instance.stop() };
  } catch (err) {
    await removeInstanceDir(name);
    throw err;
  }
}

/** The working folder of a sandbox or task: `workdir`, else a fresh one in its record's folder. */
async function workFolder(name: string, spec: InstanceSpec): Promise<string> {
  const workdir = spec.workdir ?? join(instanceDir(name), "work");
  await makeFolder(workdir).catch((err: Error) => {
    throw new ValidationError("workdir", `${workdir} cannot be made a folder: ${err.message}`);
  });
  return workdir;
}

function newRecord(
  name: string,
  spec: InstanceSpec,
  pid: number,
  envPath: string,
  extra: Partial<ProcessRecord>,
): ProcessRecord {
  return {
    name,
    pid,
    startTicks: processStartTicks(pid),
    port: 0,
    envPath,
    envName: spec.envName,
    envType: "function_based",
    startedAt: new Date().toISOString(),
    labels: instanceLabels(spec),
    ...extra,
  };
}

async function exited(instance: ProcessInstance): Promise<string | undefined> {
  return (await instance.isRunning()) ? undefined : "its process exited";
}
