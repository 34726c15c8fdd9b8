import { configuredPython } from "../../config.js";
import type { OperationOptions } from "../../util/deadline.js";
import type { Instance, InstanceInfo, InstanceOf } from "../instance.js";
import { asInstance } from "../instance.js";
import type { InstanceSpec } from "../instance-spec.js";
import { LABELS, ownerIsDead } from "../labels.js";
import type { Runtime } from "../runtime.js";
import { startInstance } from "../start-sequence.js";
import type { IsolationKind } from "./isolation.js";
import { ProcessInstance } from "./process-instance.js";
import { processStartDriver } from "./process-start.js";
import { listRecords, readRecord, recordIsAlive } from "./process-state.js";

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
 * 127.0.0.1 and a free port, in its own process group, with logs in the state dir;
 * shell sandboxes (optionally confined) and tasks likewise. The embedded default when
 * no Docker engine answers; no isolation beyond a process unless `isolation` says.
 */
export class ProcessRuntime implements Runtime {
  readonly kind = "process" as const;
  readonly host = "localhost";
  /** It runs environment folders, not images. */
  readonly images = undefined;
  private readonly python: string;

  constructor(private readonly options: ProcessRuntimeOptions = {}) {
    this.python = options.python ?? configuredPython();
  }

  /** Always answers: this machine is the engine. */
  async ping(): Promise<void> {}

  start<S extends InstanceSpec>(spec: S, options: OperationOptions = {}): Promise<InstanceOf<S>> {
    const driver = processStartDriver({
      python: this.python,
      isolation: this.options.isolation ?? "none",
      isolationBinary: this.options.isolationBinary,
      imageRoots: this.options.imageRoots,
    });
    return startInstance(driver, spec, options);
  }

  /** The instance of this name (or `process-<pid>` id), in any state; undefined when there is none. */
  async attach(idOrName: string): Promise<Instance | undefined> {
    const record =
      (await readRecord(idOrName)) ?? (await listRecords()).find((r) => `process-${r.pid}` === idOrName);
    return record ? asInstance(new ProcessInstance(record, true)) : undefined;
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
    return records.map((r) => asInstance(new ProcessInstance(r, true)));
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
