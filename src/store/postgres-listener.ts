import pg from "pg";

/** First and last wait before connecting again after the listening connection dropped. */
const RECONNECT_MS = { first: 100, max: 5_000 };

/**
 * One connection of its own that LISTENs to channels (a pooled connection cannot: it is
 * handed to other queries between them). When it drops it connects again, listens again
 * and calls `onGap`, since notifications sent meanwhile are lost.
 */
export class PostgresListener {
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;
  /** Each channel listened to, settled once its LISTEN is in place. */
  private readonly channels = new Map<string, Promise<void>>();
  private retryMs = RECONNECT_MS.first;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly onNotification: (channel: string, payload: string) => void,
    private readonly onGap: () => void,
  ) {}

  /** Resolves once notifications on `channel` arrive. */
  listen(channel: string): Promise<void> {
    let listening = this.channels.get(channel);
    if (!listening) {
      listening = this.connected().then(
        async (client) => void (await client.query(`LISTEN ${quoted(channel)}`)),
      );
      this.channels.set(channel, listening);
      listening.catch(() => this.channels.delete(channel));
    }
    return listening;
  }

  unlisten(channel: string): void {
    if (!this.channels.delete(channel)) return;
    this.client?.query(`UNLISTEN ${quoted(channel)}`).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const client = this.client ?? (await this.connecting?.catch(() => undefined));
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private connected(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.url });
    client.on("notification", (n) => this.onNotification(n.channel, n.payload ?? ""));
    client.on("error", () => this.dropped(client));
    client.on("end", () => this.dropped(client));
    try {
      await client.connect();
      for (const channel of this.channels.keys()) await client.query(`LISTEN ${quoted(channel)}`);
      if (this.closed) throw new Error("the database is closed");
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    this.client = client;
    this.retryMs = RECONNECT_MS.first;
    return client;
  }

  private dropped(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    if (!this.closed) this.retry();
  }

  private retry(): void {
    this.retryTimer = setTimeout(() => {
      this.connected().then(
        () => this.onGap(),
        () => {
          this.retryMs = Math.min(this.retryMs * 2, RECONNECT_MS.max);
          if (!this.closed) this.retry();
        },
      );
    }, this.retryMs);
    this.retryTimer.unref();
  }
}

function quoted(channel: string): string {
  return `"${channel.replace(/"/g, '""')}"`;
}
