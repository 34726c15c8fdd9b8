import type { ServingInstance } from "../runtime/instance.js";
import { HttpClient } from "../transport/http-client.js";
import { readinessClient } from "../runtime/readiness/http-health.js";
import type { CallOptions } from "../transport/method-client.js";
import { MethodClient } from "../transport/method-client.js";
import { ConnectionError } from "../errors.js";
import type { BalancerCandidate } from "./load-balancer.js";

const LATENCY_SAMPLES = 256;

/** What `getStats()` reports of one instance. */
export interface InstanceStats {
  id: string;
  name: string;
  /** Where the instance runs: `localhost` for local runtimes. */
  host: string;
  endpoint: string;
  healthy: boolean;
  /** Calls sent to it. */
  requests: number;
  inFlight: number;
  /** Calls that failed on the connection (not errors raised by the method). */
  failures: number;
  /** Median latency of its recent successful calls, in milliseconds (null before any). */
  latencyMedianMs: number | null;
}

/** One replica of a pool: its instance, its client, and what happened to it. */
export class PoolMember implements BalancerCandidate {
  healthy = true;
  requests = 0;
  inFlight = 0;
  failures = 0;
  private client: MethodClient;
  /** One kept-alive connection for health probes: a probe a second costs no new connection. */
  private prober: HttpClient;
  private readonly latencies: number[] = [];

  constructor(
    readonly index: number,
    readonly instance: ServingInstance,
  ) {
    this.client = this.newClient();
    this.prober = readinessClient(this.instance.endpoint(), this.instance.authToken);
  }

  /** Whether `/health` answers (any answer for HTTP-based environments), within `timeoutMs`. */
  async probe(timeoutMs: number): Promise<boolean> {
    try {
      const answer = await this.prober.request({
        method: "GET",
        path: "/health",
        signal: AbortSignal.timeout(timeoutMs),
      });
      return answer.status === 200 || this.instance.envType === "http_based";
    } catch {
      return false;
    }
  }

  get endpoint(): string {
    return this.instance.endpoint();
  }

  async call(
    method: string,
    args: unknown[],
    kwargs: Record<string, unknown>,
    options: CallOptions,
  ): Promise<unknown> {
    this.requests++;
    this.inFlight++;
    const started = performance.now();
    try {
      const result = await this.client.call(method, args, kwargs, options);
      this.recordLatency(performance.now() - started);
      return result;
    } catch (err) {
      if (err instanceof ConnectionError) this.failures++;
      throw err;
    } finally {
      this.inFlight--;
    }
  }

  listMethods(options: CallOptions) {
    return this.client.listMethods(options);
  }

  /** Re-reads the address; a new one gets a new connection pool. */
  async refresh(): Promise<void> {
    const before = this.instance.endpoint();
    await this.instance.refresh();
    if (this.instance.endpoint() !== before) {
      const [oldClient, oldProber] = [this.client, this.prober];
      this.client = this.newClient();
      this.prober = readinessClient(this.instance.endpoint(), this.instance.authToken);
      await Promise.all([oldClient.close(), oldProber.close()]);
    }
  }

  stats(): InstanceStats {
    return {
      id: this.instance.id,
      name: this.instance.name,
      host: this.instance.host,
      endpoint: this.endpoint,
      healthy: this.healthy,
      requests: this.requests,
      inFlight: this.inFlight,
      failures: this.failures,
      latencyMedianMs: this.latencyMedian(),
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.client.close(), this.prober.close()]);
  }

  private newClient(): MethodClient {
    return new MethodClient(
      new HttpClient(this.instance.endpoint(), {
        connectTimeoutMs: 3_000,
        authToken: this.instance.authToken,
      }),
      this.instance.envType,
    );
  }

  private recordLatency(ms: number): void {
    this.latencies.push(ms);
    if (this.latencies.length > LATENCY_SAMPLES) this.latencies.shift();
  }

  private latencyMedian(): number | null {
    if (this.latencies.length === 0) return null;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    const value = sorted.length % 2 ? sorted[mid] : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
    return Math.round((value ?? 0) * 1000) / 1000;
  }
}
