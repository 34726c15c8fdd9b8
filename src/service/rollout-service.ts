import { randomBytes } from "node:crypto";
import { NotFoundError, UnsupportedError, ValidationError } from "../errors.js";
import { sanitizeName } from "../image/env-folder.js";
import type { DockerRuntime } from "../runtime/docker/docker-runtime.js";
import type { Instance } from "../runtime/instance.js";
import type { ProcessRuntime } from "../runtime/process/process-runtime.js";
import type { InstanceRecord, InstanceStore, ResourceLimits } from "../store/instance-store.js";
import { INSTANCES_KEY } from "../store/instance-store.js";
import type { ExecuteRequest, StartRequest } from "./request-schemas.js";
import { environmentOf } from "./request-schemas.js";

export interface RolloutServiceOptions {
  store: InstanceStore;
  limits: ResourceLimits;
  docker: DockerRuntime | undefined;
  local: ProcessRuntime;
  /** Cap of a command's output per stream (bytes). */
  maxOutputBytes?: number;
  /** Default command timeout when neither the request nor the instance gives one (seconds). */
  defaultTimeoutS?: number;
}

/** The label that ties a sandbox to its run id. */
export const RUN_LABEL = "affinetes.rollout.run";

/**
 * The rollout service's logic, without HTTP: admission through the store (atomic, also
 * across service processes), shell sandboxes through the runtimes, and bookkeeping.
 */
export class RolloutService {
  private readonly live = new Map<string, Instance>();
  private readonly started = Date.now();

  constructor(private readonly options: RolloutServiceOptions) {}

  async start(request: StartRequest): Promise<{ status: "success"; instance_id: string }> {
    const config = environmentOf(request);
    const runtime = this.runtimeFor(config.container_type);
    if (config.container_type === "docker" && !config.image) {
      throw new ValidationError("environment_config.image", "a docker instance needs an image");
    }
    const now = Date.now();
    const record: InstanceRecord = {
      runId: request.run_id,
      containerName: request.container_name,
      containerType: config.container_type,
      image: config.image ?? "",
      resources: config.resources ?? {},
      runtimeId: undefined,
      state: "starting",
      createdAt: now,
      lastUsedAt: now,
      numCmd: 0,
      config: { ...config },
    };
    await this.options.store.admit(record, this.options.limits);
    let instance: Instance;
    try {
      const cpus = config.resources?.cpus;
      const memoryGb = config.resources?.memory_gb;
      instance = await runtime.start({
        envName: "rollout",
        name: `rollout-${sanitizeName(request.container_name ?? request.run_id).slice(0, 60)}-${randomBytes(3).toString("hex")}`,
        reuse: false,
        serve: false,
        restartPolicy: "no",
        ...(config.image ? { image: config.image } : {}),
        ...(config.cwd ? { workdir: config.cwd } : {}),
        ...(config.env ? { envVars: config.env } : {}),
        ...(cpus !== undefined && cpus > 0 ? { cpus } : {}),
        ...(memoryGb !== undefined && memoryGb > 0 ? { memoryBytes: Math.round(memoryGb * 2 ** 30) } : {}),
        labels: { [RUN_LABEL]: request.run_id },
      });
    } catch (err) {
      await this.options.store.release(request.run_id); // nothing half-created is kept
      throw err;
    }
    this.live.set(request.run_id, instance);
    await this.options.store.update(request.run_id, { state: "running", runtimeId: instance.id });
    return { status: "success", instance_id: request.run_id };
  }

  async execute(request: ExecuteRequest) {
    const instance = this.live.get(request.run_id);
    const record = await this.options.store.get(request.run_id);
    if (!instance || !record)
      throw new NotFoundError("instance", request.run_id, `Unknown run_id: ${request.run_id}`);
    const timeoutS =
      request.timeout ?? (record.config.timeout as number | undefined) ?? this.options.defaultTimeoutS ?? 600;
    // Grouped so stderr joins stdout in the order it was written.
    const result = await instance.exec(`{ ${request.cmd}\n} 2>&1`, {
      timeoutMs: Math.round(timeoutS * 1000),
      ...(request.cwd ? { cwd: request.cwd } : {}),
      ...(request.env ? { env: request.env } : {}),
      ...(this.options.maxOutputBytes ? { maxOutputBytes: this.options.maxOutputBytes } : {}),
    });
    await this.options.store.touch(request.run_id, Date.now());
    return {
      status: "success" as const,
      result: {
        output: result.stdout + result.stderr,
        returncode: result.exitCode,
        timed_out: result.timedOut,
        truncated: result.truncated,
      },
    };
  }

  /** Stops the instance and frees what it held. Idempotent: an unknown run id is fine. */
  async close(runId: string): Promise<{ status: "success" }> {
    const instance = this.live.get(runId);
    this.live.delete(runId);
    await instance?.stop();
    await this.options.store.release(runId);
    return { status: "success" };
  }

  async availableResources(): Promise<Record<string, number>> {
    const keys = Object.keys(this.options.limits);
    const held = await this.options.store.allocated(keys);
    return Object.fromEntries(keys.map((k) => [k, (this.options.limits[k] ?? 0) - (held[k] ?? 0)]));
  }

  async stats(filter: { runId?: string; containerName?: string }) {
    const records = await this.options.store.list(filter);
    const keys = Object.keys(this.options.limits);
    const allocated = await this.options.store.allocated(keys);
    return {
      server_time: new Date().toISOString(),
      uptime_s: Math.round((Date.now() - this.started) / 1000),
      active_instances: this.live.size,
      total_instances: (await this.options.store.allocated([INSTANCES_KEY]))[INSTANCES_KEY] ?? 0,
      max_resources: this.options.limits,
      allocated_resources: allocated,
      available_resources: await this.availableResources(),
      instances: records.map((r) => ({
        run_id: r.runId,
        container_name: r.containerName ?? null,
        image: r.image,
        type: r.containerType,
        state: r.state,
        created_at: new Date(r.createdAt).toISOString(),
        last_used_at: new Date(r.lastUsedAt).toISOString(),
        num_cmd: r.numCmd,
      })),
    };
  }

  /** Stops what this process started (the store forgets it): nothing is left running. */
  async shutdown(): Promise<void> {
    await Promise.allSettled([...this.live.keys()].map((runId) => this.close(runId)));
  }

  private runtimeFor(type: string): DockerRuntime | ProcessRuntime {
    if (type === "local") return this.options.local;
    if (type === "docker") {
      if (!this.options.docker)
        throw new UnsupportedError("container_type docker: no Docker engine answers on this server");
      return this.options.docker;
    }
    throw new UnsupportedError(
      `container_type ${type} is not supported by this server yet (docker and local are)`,
    );
  }
}
