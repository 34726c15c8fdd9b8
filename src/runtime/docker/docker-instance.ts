import type Docker from "dockerode";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { AbortedError, InfrastructureError } from "../../errors.js";
import type { ExecOptions, ExecResult, InstanceEvent, RuntimeInstance } from "../instance.js";
import { noServer } from "../instance.js";
import type { EnvType, InstanceKind } from "../instance-spec.js";
import type { ContainerReach } from "./container-reach.js";
import type { DockerEvents } from "./docker-events.js";
import { DockerFrameReader, demuxDockerLogs } from "./demux-stream.js";
import { OutputCap } from "../../util/output-cap.js";
import { KILL_WAIT_MS, SETTLE_AFTER_KILL_MS, TIMEOUT_EXIT_CODE, atMost } from "../../util/command-end.js";
import { timerDelay } from "../../util/deadline.js";
import { COMMAND_TAG_VARIABLE, KILL_TAGGED_SCRIPT } from "../../util/tagged-processes.js";
import type { DockerConnection } from "./docker-connection.js";
import { queueReap } from "./reap-containers.js";

export interface DockerInstanceInit {
  docker: Docker;
  connection: DockerConnection;
  /** How the client reaches it; the instance owns it and closes it on stop or detach. */
  reach: ContainerReach;
  /** `localhost` or the SSH host's label. */
  host: string;
  kind: InstanceKind;
  /** Called once when the instance lets go of its client side (releases a shared SSH host). */
  release: () => void;
  events: DockerEvents;
  id: string;
  name: string;
  envType: EnvType;
  endpoint: string;
  reused: boolean;
  keep: boolean;
  /**
   * How `revive` starts the stopped container; default the engine's start. A container
   * under a network policy starts off the network and joins it behind its rules again.
   */
  startAgain?: () => Promise<void>;
  /** The token its method server requires, read from the container's configuration. */
  authToken?: string | undefined;
}

/** An instance held by a Docker container: a method server, a shell sandbox or a task. */
export class DockerInstance implements RuntimeInstance {
  readonly runtime = "docker" as const;
  readonly kind: InstanceKind;
  readonly id: string;
  readonly name: string;
  readonly envType: EnvType;
  readonly reused: boolean;
  readonly keep: boolean;
  readonly authToken: string | undefined;
  private readonly docker: Docker;
  private readonly connection: DockerConnection;
  readonly host: string;
  private url: string;
  private readonly reach: ContainerReach;
  private readonly release: () => void;
  private released = false;
  private readonly events: DockerEvents;
  private stopping: Promise<void> | undefined;
  private readonly startAgain: (() => Promise<void>) | undefined;

  constructor(init: DockerInstanceInit) {
    this.docker = init.docker;
    this.connection = init.connection;
    this.id = init.id;
    this.name = init.name;
    this.envType = init.envType;
    this.url = init.endpoint;
    this.reach = init.reach;
    this.host = init.host;
    this.kind = init.kind;
    this.release = init.release;
    this.events = init.events;
    this.reused = init.reused;
    this.keep = init.keep;
    this.startAgain = init.startAgain;
    this.authToken = init.authToken;
  }

  endpoint(): string {
    if (this.kind !== "serve") throw noServer(this.name, this.kind);
    return this.url;
  }

  /**
   * Runs `sh -c command` in the container through the engine's exec. Past `timeoutMs` (or
   * on an abort) every process of the command is killed, also those that left its process
   * group (they all carry its tag), and the call returns within a second whatever is left
   * holding the output. A command that exits leaving a background process holding its
   * output returns when the engine ends the stream (2 s after the exit).
   */
  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const tag = randomUUID();
    const exec = await this.docker.getContainer(this.id).exec({
      Cmd: ["sh", "-c", command],
      // the tag last, so the caller's variables cannot replace it
      Env: [
        ...Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`),
        `${COMMAND_TAG_VARIABLE}=${tag}`,
      ],
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
      await atMost(this.killTagged(tag), KILL_WAIT_MS);
      // the last frames get a moment; a process that escaped the kill may hold the stream
      await atMost(ended, SETTLE_AFTER_KILL_MS);
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

  /**
   * Kills, from a second exec, every process of the container carrying a command's tag
   * (see `KILL_TAGGED_SCRIPT`: only `sh` and /proc, which any image has).
   */
  private async killTagged(tag: string): Promise<void> {
    try {
      const killer = await this.docker.getContainer(this.id).exec({
        Cmd: ["sh", "-c", KILL_TAGGED_SCRIPT, "sh", COMMAND_TAG_VARIABLE, tag],
        AttachStdout: true,
        AttachStderr: true,
      });
      const stream = await killer.start({ hijack: true, stdin: false });
      stream.resume();
      await new Promise((resolve) => {
        stream.once("end", resolve);
        stream.once("close", resolve);
        stream.once("error", resolve);
      });
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
    if (info.State.Running && this.kind === "serve") this.url = await this.reach.open(info);
  }

  async revive(): Promise<boolean> {
    if (this.stopping) return false;
    const container = this.docker.getContainer(this.id);
    try {
      const info = await container.inspect();
      if (!info.State.Running && !info.State.Restarting)
        await (this.startAgain ? this.startAgain() : container.start());
      return true;
    } catch {
      // one that could not get its rules back must not run without them
      if (this.startAgain) await container.kill().catch(() => undefined);
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
    if (options.timeoutMs !== undefined)
      timer = setTimeout(() => resolve("timeout"), timerDelay(options.timeoutMs));
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
