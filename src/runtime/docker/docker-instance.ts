import type Docker from "dockerode";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { AbortedError, InfrastructureError, UnsupportedError } from "../../errors.js";
import { TIMEOUT_EXIT_CODE } from "../../util/run-command.js";
import type { EnvType, ExecOptions, ExecResult, Instance, InstanceEvent } from "../instance.js";
import type { ContainerReach } from "./container-reach.js";
import type { DockerEvents } from "./docker-events.js";
import { DockerFrameReader, demuxDockerLogs } from "./demux-stream.js";
import { OutputCap } from "../../util/output-cap.js";
import type { DockerConnection } from "./docker-connection.js";
import { queueReap } from "./reap-containers.js";

export interface DockerInstanceInit {
  docker: Docker;
  connection: DockerConnection;
  /** How the client reaches it; the instance owns it and closes it on stop or detach. */
  reach: ContainerReach;
  /** `localhost` or the SSH host's label. */
  host: string;
  /** False for a shell sandbox (no method server). */
  serves: boolean;
  /** Called once when the instance lets go of its client side (releases a shared SSH host). */
  release: () => void;
  events: DockerEvents;
  id: string;
  name: string;
  envType: EnvType;
  endpoint: string;
  reused: boolean;
  keep: boolean;
  /** The token its method server requires, read from the container's configuration. */
  authToken?: string | undefined;
}

/** An environment served by a Docker container. */
export class DockerInstance implements Instance {
  readonly runtime = "docker" as const;
  readonly id: string;
  readonly name: string;
  readonly envType: EnvType;
  readonly reused: boolean;
  readonly keep: boolean;
  readonly authToken: string | undefined;
  private readonly docker: Docker;
  private readonly connection: DockerConnection;
  readonly host: string;
  readonly serves: boolean;
  private url: string;
  private readonly reach: ContainerReach;
  private readonly release: () => void;
  private released = false;
  private readonly events: DockerEvents;
  private stopping: Promise<void> | undefined;

  constructor(init: DockerInstanceInit) {
    this.docker = init.docker;
    this.connection = init.connection;
    this.id = init.id;
    this.name = init.name;
    this.envType = init.envType;
    this.url = init.endpoint;
    this.reach = init.reach;
    this.host = init.host;
    this.serves = init.serves;
    this.release = init.release;
    this.events = init.events;
    this.reused = init.reused;
    this.keep = init.keep;
    this.authToken = init.authToken;
  }

  endpoint(): string {
    if (!this.serves) throw new UnsupportedError(`${this.name} is a shell sandbox: it runs no method server`);
    return this.url;
  }

  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    // The shell records its pid so a timed-out command can be killed from a second exec.
    const pidFile = `/tmp/.affinetes-exec-${randomBytes(6).toString("hex")}.pid`;
    const exec = await this.docker.getContainer(this.id).exec({
      // Not `exec`: the outer shell removes the pid file after the command, whatever it did.
      Cmd: [
        "sh",
        "-c",
        `echo $$ > ${pidFile}; sh -c "$1"; status=$?; rm -f ${pidFile}; exit $status`,
        "sh",
        command,
      ],
      Env: Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`),
      WorkingDir: options.cwd,
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await exec.start({ hijack: true, stdin: false });
    // Split and capped as it streams: memory stays bounded whatever the command writes.
    const reader = new DockerFrameReader();
    const out = {
      stdout: new OutputCap(options.maxOutputBytes),
      stderr: new OutputCap(options.maxOutputBytes),
    };
    stream.on("data", (chunk: Buffer) => {
      for (const frame of reader.frames(chunk)) out[frame.stream].push(frame.data);
    });
    const ended = new Promise<void>((resolve, reject) => {
      stream.once("end", resolve);
      stream.once("close", resolve);
      stream.once("error", reject);
    });
    const outcome = await raceWithLimits(ended, options);
    if (outcome !== "done") {
      await this.killExec(pidFile);
      stream.destroy();
      if (outcome === "aborted") throw new AbortedError("command", { cause: options.signal?.reason });
    }
    const [stdout, stderr] = [out.stdout.text(), out.stderr.text()];
    const truncated = out.stdout.truncated || out.stderr.truncated;
    if (outcome === "timeout")
      return { stdout, stderr, exitCode: TIMEOUT_EXIT_CODE, timedOut: true, truncated };
    const info = await exec.inspect();
    return { stdout, stderr, exitCode: info.ExitCode ?? -1, timedOut: false, truncated };
  }

  private async killExec(pidFile: string): Promise<void> {
    try {
      const killer = await this.docker.getContainer(this.id).exec({
        // Exec processes lead their own process group: kill the whole group, children included.
        Cmd: [
          "sh",
          "-c",
          `pid=$(cat ${pidFile}); kill -9 -$pid 2>/dev/null || kill -9 $pid; rm -f ${pidFile}`,
        ],
      });
      const stream = await killer.start({ hijack: true, stdin: false });
      stream.resume();
      await new Promise((resolve) => stream.once("end", resolve));
    } catch {
      // the container may be gone; nothing left to kill
    }
  }

  async logs(options: { tail?: number } = {}): Promise<string> {
    const buffer = (await this.docker.getContainer(this.id).logs({
      stdout: true,
      stderr: true,
      follow: false,
      ...(options.tail !== undefined ? { tail: options.tail } : {}),
    })) as unknown as Buffer;
    return demuxDockerLogs(buffer);
  }

  async *followLogs(options: { tail?: number; signal?: AbortSignal } = {}): AsyncIterable<string> {
    const stream = (await this.docker.getContainer(this.id).logs({
      stdout: true,
      stderr: true,
      follow: true,
      ...(options.tail !== undefined ? { tail: options.tail } : {}),
      ...(options.signal ? { abortSignal: options.signal } : {}),
    })) as unknown as NodeJS.ReadableStream;
    const frames = new DockerFrameReader();
    try {
      for await (const chunk of stream) yield frames.push(chunk as Buffer);
    } catch (err) {
      if (!options.signal?.aborted) throw err;
    }
  }

  /** Waits for the container to exit; returns its exit code. */
  async wait(options: { signal?: AbortSignal } = {}): Promise<number> {
    const result = (await this.docker
      .getContainer(this.id)
      .wait(options.signal ? { abortSignal: options.signal } : {})) as { StatusCode: number };
    return result.StatusCode;
  }

  /** The container ports published on the engine's host: container port → `host:port`. */
  async publishedPorts(): Promise<Record<number, string>> {
    const info = await this.docker.getContainer(this.id).inspect();
    const ports: Record<number, string> = {};
    for (const [key, bindings] of Object.entries(info.NetworkSettings.Ports ?? {})) {
      const binding = bindings?.[0];
      if (binding) ports[Number.parseInt(key, 10)] = `${binding.HostIp || "127.0.0.1"}:${binding.HostPort}`;
    }
    return ports;
  }

  async isRunning(): Promise<boolean> {
    try {
      const info = await this.docker.getContainer(this.id).inspect();
      return info.State.Running;
    } catch {
      return false;
    }
  }

  watch(listener: (event: InstanceEvent) => void): () => void {
    return this.events.subscribe(this.id, listener);
  }

  async refresh(): Promise<void> {
    const info = await this.docker.getContainer(this.id).inspect();
    if (info.State.Running && this.serves) this.url = await this.reach.open(info);
  }

  async revive(): Promise<boolean> {
    if (this.stopping) return false;
    try {
      const info = await this.docker.getContainer(this.id).inspect();
      if (!info.State.Running && !info.State.Restarting) await this.docker.getContainer(this.id).start();
      return true;
    } catch {
      return false; // removed, or the engine refuses: it cannot come back
    }
  }

  stop(): Promise<void> {
    this.stopping ??= removeContainer(this.docker, this.id).finally(() => this.detach());
    return this.stopping;
  }

  async detach(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.reach.close();
    this.release();
  }

  stopSync(): void {
    if (this.stopping) return;
    this.stopping = Promise.resolve();
    queueReap(this.connection, this.id); // removed with the others by flushReaps()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Kills and removes a container, normally in one engine call; a container already gone
 * is fine. The engine refuses to remove a container caught restarting: then its restart
 * policy is switched off and it is killed first.
 */
export async function removeContainer(docker: Docker, id: string): Promise<void> {
  const container = docker.getContainer(id);
  for (let attempt = 0; ; attempt++) {
    try {
      await container.remove({ force: true, v: true });
      return;
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      const message = String((err as Error).message);
      if (status === 404) return;
      if (status === 409 && /already in progress/i.test(message)) return;
      if (attempt >= 3) {
        throw new InfrastructureError(`could not remove container ${id}: ${message}`, { cause: err });
      }
      await container.update({ RestartPolicy: { Name: "no" } }).catch(() => undefined);
      await container.kill().catch(() => undefined);
      await sleep(50 * (attempt + 1));
    }
  }
}

async function raceWithLimits(
  done: Promise<void>,
  options: ExecOptions,
): Promise<"done" | "timeout" | "aborted"> {
  if (options.signal?.aborted) return "aborted";
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const limits = new Promise<"timeout" | "aborted">((resolve) => {
    if (options.timeoutMs !== undefined) timer = setTimeout(() => resolve("timeout"), options.timeoutMs);
    onAbort = () => resolve("aborted");
    options.signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([done.then(() => "done" as const), limits]);
  } finally {
    clearTimeout(timer);
    if (onAbort) options.signal?.removeEventListener("abort", onAbort);
  }
}
