import type { ContainerView } from "../control-plane.js";
import type { ApiClient } from "./api-client.js";

/** A control-plane container: a snapshot of it (`info`), and what can be done with it. */
export class ContainerHandle {
  constructor(
    private readonly api: ApiClient,
    private snapshot: ContainerView,
  ) {}

  get id(): string {
    return this.snapshot.id;
  }

  /** As of the last call that returned it (`refresh()` updates it). */
  get info(): ContainerView {
    return this.snapshot;
  }

  async refresh(): Promise<ContainerView> {
    this.snapshot = await this.api.json({ method: "GET", path: this.path() });
    return this.snapshot;
  }

  /** The output so far (`tail`: only the last lines). */
  async logs(options: { tail?: number } = {}): Promise<string> {
    let text = "";
    for await (const chunk of await this.api.stream({
      method: "GET",
      path: `${this.path()}/logs`,
      query: { tail: options.tail?.toString() },
    })) {
      text += chunk.toString("utf8");
    }
    return text;
  }

  /** The output as it is written, until the container ends or `signal` aborts. */
  async *streamLogs(options: { tail?: number; signal?: AbortSignal } = {}): AsyncIterable<string> {
    const body = await this.api.stream({
      method: "GET",
      path: `${this.path()}/logs`,
      query: { follow: "true", tail: options.tail?.toString() },
      long: true,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    try {
      for await (const chunk of body) yield chunk.toString("utf8");
    } catch (err) {
      if (!options.signal?.aborted) throw err;
    }
  }

  /** Waits until it has ended; returns its final state (`status`, `exitCode`). */
  async wait(options: { signal?: AbortSignal } = {}): Promise<ContainerView> {
    this.snapshot = await this.api.json({
      method: "POST",
      path: `${this.path()}/wait`,
      long: true,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return this.snapshot;
  }

  /** Stops it; it stays listed as `stopped` until deleted. Idempotent. */
  async stop(): Promise<ContainerView> {
    this.snapshot = await this.api.json({ method: "POST", path: `${this.path()}/stop` });
    return this.snapshot;
  }

  async delete(): Promise<void> {
    await this.api.json({ method: "DELETE", path: this.path() });
  }

  private path(): string {
    return `/v1/containers/${encodeURIComponent(this.snapshot.id)}`;
  }
}
