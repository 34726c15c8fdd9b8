import type Docker from "dockerode";
import type { IncomingMessage } from "node:http";
import { logger } from "../../logger.js";
import type { InstanceEvent } from "../instance.js";
import { LABELS } from "../labels.js";

type Listener = (event: InstanceEvent) => void;

const ACTIONS: Record<string, InstanceEvent> = {
  die: "exited",
  oom: "exited",
  start: "started",
  restart: "started",
};

/**
 * One engine event stream shared by all the containers of a runtime, opened while
 * someone listens and closed when nobody does. It never keeps the process alive.
 */
export class DockerEvents {
  private readonly listeners = new Map<string, Set<Listener>>();
  private stream: IncomingMessage | undefined;
  private opening: Promise<void> | undefined;

  constructor(private readonly docker: Docker) {}

  subscribe(containerId: string, listener: Listener): () => void {
    let set = this.listeners.get(containerId);
    if (!set) this.listeners.set(containerId, (set = new Set()));
    set.add(listener);
    void this.open();
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(containerId);
      if (this.listeners.size === 0) this.close();
    };
  }

  private open(): Promise<void> {
    if (this.stream || this.opening) return this.opening ?? Promise.resolve();
    this.opening = this.connect().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async connect(): Promise<void> {
    try {
      const stream = (await this.docker.getEvents({
        filters: { type: ["container"], label: [`${LABELS.managed}=true`] },
      })) as unknown as IncomingMessage;
      if (this.listeners.size === 0) return void stream.destroy();
      this.stream = stream;
      stream.socket?.unref();
      let buffered = "";
      stream.on("data", (chunk: Buffer) => {
        buffered += chunk.toString("utf8");
        let newline: number;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          this.dispatch(buffered.slice(0, newline));
          buffered = buffered.slice(newline + 1);
        }
      });
      stream.once("close", () => {
        if (this.stream === stream) this.stream = undefined;
      });
    } catch (err) {
      logger.warn(
        { err: (err as Error).message },
        "docker events unavailable; health checks still watch instances",
      );
    }
  }

  private dispatch(line: string): void {
    if (!line.trim()) return;
    let message: { Action?: string; status?: string; id?: string; Actor?: { ID?: string } };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      return;
    }
    const id = message.Actor?.ID ?? message.id;
    const event = ACTIONS[message.Action ?? message.status ?? ""];
    if (!id || !event) return;
    for (const listener of this.listeners.get(id) ?? []) listener(event);
  }

  private close(): void {
    this.stream?.destroy();
    this.stream = undefined;
  }
}
