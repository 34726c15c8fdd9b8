import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { configuredPython } from "../../config.js";
import { AbortedError, InstanceStartError, UnsupportedError, ValidationError } from "../../errors.js";
import { readEnvFolder } from "../../image/env-folder.js";
import type { EnvFolder } from "../../image/env-folder.js";
import { AUTH_TOKEN_VARIABLE, serverScriptPath } from "../../server/server-files.js";
import { instanceToken } from "../../transport/auth-token.js";
import type { OperationOptions } from "../../util/deadline.js";
import { Deadline } from "../../util/deadline.js";
import { makeFolder } from "../../util/make-folder.js";
import type { Instance, InstanceInfo, InstanceSpec } from "../instance.js";
import { LABELS, ownerIsDead, ownerLabels } from "../labels.js";
import type { Runtime } from "../runtime.js";
import { validateInstanceName } from "../instance-name.js";
import { readinessClient, waitForReady } from "../wait-for-ready.js";
import { shellQuote } from "../../util/shell-quote.js";
import { KEEP_ALIVE_SCRIPT } from "../keep-alive.js";
import { networkHolderScript } from "../network-holder-script.js";
import { waitForNetwork } from "../wait-for-network.js";
import type { IsolationKind } from "./isolation.js";
import { relativeToWorkdir } from "./sandbox-cwd.js";
import { launcherEnv } from "./sandbox-env.js";
import type { SandboxFolders } from "./sandbox-folder.js";
import { createSandboxFolders, removeSandboxFolders, runsAsRoot } from "./sandbox-folder.js";
import { planSandbox } from "./sandbox-plan.js";
import { ProcessInstance, logFile } from "./process-instance.js";
import type { ProcessRecord } from "./process-state.js";
import {
  instanceDir,
  listRecords,
  processStartTicks,
  readRecord,
  recordIsAlive,
  removeInstanceDir,
  writeRecord,
} from "./process-state.js";

const DEFAULT_START_TIMEOUT_MS = 60_000;

export interface ProcessRuntimeOptions {
  /** Python interpreter; default `AFFINETES_PYTHON` or `python3`. */
  python?: string;
  /**
   * How shell sandboxes (`serve: false`) confine their commands: `none` (default, plain
   * processes in their folder); `bubblewrap` (`bwrap`: read-only system, private working
   * folder and /tmp, own pid namespace; `image` may name a root folder); `apptainer`,
   * `singularity` or `enroot` (commands run in the container `image`, the working folder
   * and a private /tmp bound in).
   */
  isolation?: IsolationKind;
  /** The isolation tool's binary (default its usual name, in the system folders or on this process's PATH). */
  isolationBinary?: string;
  /**
   * Folders whose subfolders a request may give as `image` of a bubblewrap sandbox (an
   * unpacked root file system) or of an apptainer sandbox folder; default from
   * `AFFINETES_BUBBLEWRAP_IMAGE_ROOTS` (`:`-separated), else none: only the host's root.
   */
  imageRoots?: readonly string[];
}

/**
 * Runs environments as local subprocesses: the method server for the env folder on
 * 127.0.0.1 and a free port, in its own process group, with logs in the state dir.
 * The embedded default when no Docker engine answers; no isolation beyond a process.
 */
export class ProcessRuntime implements Runtime {
  readonly kind = "process" as const;
  private readonly python: string;

  constructor(private readonly options: ProcessRuntimeOptions = {}) {
    this.python = options.python ?? configuredPython();
  }

  async start(spec: InstanceSpec, options: OperationOptions = {}): Promise<Instance> {
    if (spec.serve === false) return this.startSandbox(spec, options);
    if (spec.network !== undefined && spec.network !== "full") {
      throw new UnsupportedError(
        "the process runtime's method servers share the host's network: only network \"full\" (shell sandboxes hold the others)",
      );
    }
    if (this.options.isolation && this.options.isolation !== "none") {
      throw new UnsupportedError(
        `${this.options.isolation} isolation confines shell sandboxes (serve: false), not method servers`,
      );
    }
    if (!spec.envPath) {
      throw new ValidationError("envPath", "the process runtime runs an environment folder: give envPath");
    }
    if (spec.name !== undefined) validateInstanceName(spec.name);
    const folder = await readEnvFolder(spec.envPath, spec.envType);
    const name = spec.name ?? `${folder.name}-${randomBytes(4).toString("hex")}`;
    const deadline = new Deadline(`starting ${name}`, {
      timeoutMs: options.timeoutMs ?? DEFAULT_START_TIMEOUT_MS,
      signal: options.signal,
    });
    if (spec.name !== undefined && spec.reuse !== false) {
      const adopted = await this.adopt(name, folder, spec);
      if (adopted) return adopted;
    }
    return this.spawnServer(name, folder, spec, deadline);
  }

  /**
   * A shell sandbox: an idle shell in its own process group and working folder (a fresh
   * one under the state dir unless `workdir` is given), driven through `exec`. Confined,
   * its folders are its own (see `createSandboxFolders`) and it gets its own network
   * namespace, held by the idle process; a plain one gets one only for a policy other
   * than `full`. Everything is checked before anything is made.
   */
  private async startSandbox(spec: InstanceSpec, options: OperationOptions): Promise<Instance> {
    if (spec.name !== undefined) validateInstanceName(spec.name);
    const name = spec.name ?? `${spec.envName}-${randomBytes(4).toString("hex")}`;
    const plan = await planSandbox(spec, this.options.isolation ?? "none", this.options);
    const existing = await readRecord(name);
    if (existing && recordIsAlive(existing) && spec.reuse !== false && !spec.forceRecreate) {
      return new ProcessInstance(existing, true, spec.envVars);
    }
    if (existing) await new ProcessInstance(existing, false).stop();
    const deadline = new Deadline(`starting ${name}`, {
      timeoutMs: options.timeoutMs ?? DEFAULT_START_TIMEOUT_MS,
      signal: options.signal,
    });
    await mkdir(instanceDir(name), { recursive: true }); // its record and log, whatever the workdir
    let folders: SandboxFolders | undefined;
    let instance: ProcessInstance | undefined;
    try {
      folders = plan.isolation
        ? await createSandboxFolders(name, relativeToWorkdir(plan.isolation.cwd), plan.policy.kind !== "none")
        : undefined;
      const workdir = folders?.workdir ?? spec.workdir ?? join(instanceDir(name), "work");
      if (!folders)
        await makeFolder(workdir).catch((err: Error) => {
          throw new ValidationError("workdir", `${workdir} cannot be made a folder: ${err.message}`);
        });
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
      const child = await spawnHolder(name, script, {
        // outside the sandbox, nothing of the request: a PATH there would pick the programs it runs
        cwd: plan.tools ? "/" : workdir,
        env: plan.tools ? launcherEnv(tag) : { ...process.env, ...spec.envVars },
      });
      const record: ProcessRecord = {
        name,
        pid: child.pid as number,
        startTicks: processStartTicks(child.pid as number),
        port: 0,
        envPath: workdir,
        envName: spec.envName,
        envType: "function_based",
        startedAt: new Date().toISOString(),
        labels: {
          ...spec.labels,
          [LABELS.managed]: "true",
          [LABELS.envName]: spec.envName,
          [LABELS.keep]: String(spec.keep ?? false),
          [LABELS.serve]: "false",
          ...ownerLabels(),
        },
        tag,
        ...(spec.envVars ? { envVars: { ...spec.envVars } } : {}),
        ...(plan.isolation && folders ? { isolation: { ...plan.isolation, folders } } : {}),
      };
      instance = new ProcessInstance(record, false, spec.envVars, child);
      if (plan.tools) {
        const pid = await waitForNetwork({
          instance: name,
          dir: instanceDir(name),
          deadline,
          running: () => instance?.isRunning() ?? Promise.resolve(false),
          logs: () => instance?.logs({ tail: 20 }) ?? Promise.resolve(""),
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
      return instance;
    } catch (err) {
      // nothing half-made stays: the holder, its namespace's helpers, the folders, the record
      if (instance) await instance.stop();
      else await removeInstanceDir(name);
      await removeSandboxFolders(folders?.root);
      throw err;
    }
  }

  /** An already running instance of this name and folder, unless `forceRecreate`; stale records are removed. */
  private async adopt(name: string, folder: EnvFolder, spec: InstanceSpec): Promise<Instance | undefined> {
    const record = await readRecord(name);
    if (!record) return undefined;
    const running = recordIsAlive(record);
    if (running && !spec.forceRecreate && record.envPath === folder.path) {
      return new ProcessInstance(record, true, spec.envVars);
    }
    if (running) await new ProcessInstance(record, false).stop();
    else await removeInstanceDir(name);
    return undefined;
  }

  private async spawnServer(
    name: string,
    folder: EnvFolder,
    spec: InstanceSpec,
    deadline: Deadline,
  ): Promise<Instance> {
    const dir = instanceDir(name);
    await mkdir(dir, { recursive: true });
    const portFile = join(dir, "port");
    await rm(portFile, { force: true });
    const log = await open(logFile(name), "a");
    const labels = {
      ...spec.labels,
      [LABELS.managed]: "true",
      [LABELS.envName]: spec.envName,
      [LABELS.envType]: folder.envType,
      [LABELS.keep]: String(spec.keep ?? false),
      ...ownerLabels(),
    };
    const spawnFailure: { reason?: string } = {};
    let child;
    try {
      child = spawn(this.python, ["-u", serverScriptPath()], {
        cwd: folder.path,
        env: this.serverEnv(folder, spec, portFile),
        stdio: ["ignore", log.fd, log.fd],
        detached: true, // its own process group: stop() reaches whatever user code spawned
      });
      // Attached before any await: a failed spawn reports on the next tick.
      child.once("error", (err) => (spawnFailure.reason = `cannot run ${this.python}: ${err.message}`));
    } finally {
      await log.close();
    }
    child.unref();
    if (child.pid === undefined) {
      // Never build an instance without a pid: stopping it would signal process group -(-1).
      await new Promise((resolve) => setImmediate(resolve)); // the spawn error arrives on the next tick
      await removeInstanceDir(name);
      throw new InstanceStartError(name, spawnFailure.reason ?? `cannot run ${this.python}`);
    }
    const record: ProcessRecord = {
      name,
      pid: child.pid,
      startTicks: processStartTicks(child.pid),
      port: 0,
      envPath: folder.path,
      envName: spec.envName,
      envType: folder.envType,
      startedAt: new Date().toISOString(),
      labels,
      authToken: instanceToken(spec),
    };
    const instance = new ProcessInstance(record, false, spec.envVars, child);
    try {
      record.port = await waitForPortFile(portFile, name, deadline, instance, spawnFailure);
      await writeRecord(record);
      const http = readinessClient(instance.endpoint(), instance.authToken);
      try {
        await waitForReady({
          instance: name,
          http,
          envType: folder.envType,
          deadline,
          failure: async () => ((await instance.isRunning()) ? undefined : "the server process exited"),
          logs: () => instance.logs({ tail: 50 }),
        });
      } finally {
        await http.close();
      }
      return instance;
    } catch (err) {
      await instance.stop();
      throw err;
    }
  }

  private serverEnv(folder: EnvFolder, spec: InstanceSpec, portFile: string): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...spec.envVars,
      AFFINETES_ENV_PATH: folder.envFile,
      AFFINETES_ENV_TYPE: folder.envType,
      AFFINETES_HOST: "127.0.0.1",
      AFFINETES_PORT: "0",
      AFFINETES_PORT_FILE: portFile,
    };
    // In the environment, never on the command line: /proc/PID/environ is the owner's only.
    const token = instanceToken(spec);
    if (token) env[AUTH_TOKEN_VARIABLE] = token;
    else delete env[AUTH_TOKEN_VARIABLE]; // not one inherited from this process
    // Tie the server's life to ours unless it must outlive us.
    if (!spec.keep) env.AFFINETES_PARENT_PID = String(process.pid);
    else delete env.AFFINETES_PARENT_PID;
    return env;
  }

  async list(): Promise<InstanceInfo[]> {
    const records = await listRecords();
    return records.map((r) => {
      const running = recordIsAlive(r);
      return {
        id: `process-${r.pid}`,
        name: r.name,
        pool: r.labels[LABELS.pool] ?? r.name,
        host: "localhost",
        runtime: "process",
        envName: r.envName,
        image: r.envPath,
        state: running ? "running" : "stopped",
        endpoint: running ? `http://127.0.0.1:${r.port}` : undefined,
        createdAt: new Date(r.startedAt),
        keep: r.labels[LABELS.keep] === "true",
      };
    });
  }

  async find(pool: string): Promise<Instance[]> {
    const records = (await listRecords())
      .filter((r) => (r.labels[LABELS.pool] ?? r.name) === pool && recordIsAlive(r))
      .sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
    return records.map((r) => new ProcessInstance(r, true));
  }

  async removeAll(pool?: string): Promise<string[]> {
    const records = (await listRecords()).filter(
      (r) => pool === undefined || (r.labels[LABELS.pool] ?? r.name) === pool,
    );
    await Promise.all(records.map((r) => new ProcessInstance(r, false).stop()));
    return records.map((r) => r.name);
  }

  async garbageCollect(): Promise<string[]> {
    const removed: string[] = [];
    for (const record of await listRecords()) {
      const running = recordIsAlive(record);
      if (running && !ownerIsDead(record.labels)) continue;
      await new ProcessInstance(record, false).stop();
      removed.push(record.name);
    }
    return removed;
  }

  async close(): Promise<void> {}
}

/** Starts a sandbox's holder (`sh -c script`) in its own process group, its output in the instance's log. */
async function spawnHolder(
  name: string,
  script: string,
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<ChildProcess> {
  const log = await open(logFile(name), "a");
  let child: ChildProcess;
  try {
    child = spawn("/bin/sh", ["-c", script], {
      ...options,
      stdio: ["ignore", log.fd, log.fd],
      detached: true,
    });
  } finally {
    await log.close();
  }
  child.unref();
  if (child.pid === undefined) throw new InstanceStartError(name, "cannot run /bin/sh");
  return child;
}

/** The server writes its port once it listens; until then we also watch for an early exit. */
async function waitForPortFile(
  portFile: string,
  name: string,
  deadline: Deadline,
  instance: ProcessInstance,
  spawnFailure: { reason?: string },
): Promise<number> {
  // A constant short interval: reading a small file costs little, and Python's own
  // start-up (~100 ms) is what we wait for.
  for (let elapsed = 0; ; elapsed += 5) {
    const text = await readFile(portFile, "utf8").catch(() => "");
    const port = Number(text);
    if (text && Number.isInteger(port) && port > 0) return port;
    if (spawnFailure.reason) throw new InstanceStartError(name, spawnFailure.reason);
    if (!(await instance.isRunning())) {
      if (spawnFailure.reason) throw new InstanceStartError(name, spawnFailure.reason);
      throw new InstanceStartError(
        name,
        "the server process exited during start",
        await instance.logs({ tail: 50 }),
      );
    }
    if (deadline.fired) {
      const cause = deadline.error();
      if (cause instanceof AbortedError) throw cause;
      throw new InstanceStartError(name, "server did not listen in time", await instance.logs({ tail: 50 }), {
        cause,
      });
    }
    await deadline.sleep(elapsed < 2_000 ? 5 : 25).catch(() => undefined);
  }
}
