import type { Client } from "ssh2";

/**
 * OpenSSH serves at most `MaxSessions` (default 10) sessions (commands, `docker system
 * dial-stdio`, SFTP) on one connection and refuses the next with "open failed". One host
 * handle may need more at once (a Docker runtime's kept-alive API channels, a deploy's
 * commands, their follows), so sessions spread over as many connections as they need:
 * the first is the host's own; the others are opened on demand and closed once idle.
 */
export const DEFAULT_MAX_SESSIONS = 10;

/** How long an extra connection may stay without a session before it is closed. */
const EXTRA_IDLE_MS = 5_000;

/** One SSH connection and the sessions open on it. */
export interface SessionLink {
  readonly client: Client;
  sessions: number;
  /** How many sessions it takes: the default, or fewer once the server refused one. */
  cap: number;
  idleTimer?: NodeJS.Timeout | undefined;
}

/**
 * The connections of one host over which sessions are spread. `primary` gives the host's
 * own connection (reconnecting as the host does); `dial` opens one more.
 */
export class SessionLinks {
  private readonly extra: SessionLink[] = [];
  private primaryLink: SessionLink | undefined;
  private dialing: Promise<SessionLink> | undefined;

  constructor(
    private readonly primary: () => Promise<Client>,
    private readonly dial: () => Promise<Client>,
    private readonly maxSessions = DEFAULT_MAX_SESSIONS,
  ) {}

  /**
   * Opens a session with `open` on a connection that has room, reserving its slot first;
   * a server that refuses it while others run on that connection has reached its limit:
   * the connection takes no more, and the session is opened on another.
   */
  async session<T extends { once(event: "close", listener: () => void): unknown }>(
    open: (client: Client) => Promise<T>,
    refused: (err: unknown) => boolean,
  ): Promise<T> {
    for (;;) {
      const link = await this.reserve();
      try {
        const session = await open(link.client);
        session.once("close", () => this.release(link));
        return session;
      } catch (err) {
        this.release(link);
        if (!refused(err) || link.sessions === 0) throw err;
        link.cap = Math.max(1, link.sessions);
      }
    }
  }

  /** Closes the extra connections (the host closes its own). */
  close(): void {
    for (const link of this.extra.splice(0)) {
      clearTimeout(link.idleTimer);
      link.client.end();
    }
  }

  private async reserve(): Promise<SessionLink> {
    for (;;) {
      const primary = await this.primaryOf();
      const link = [primary, ...this.extra].find((l) => l.sessions < l.cap);
      if (link) {
        clearTimeout(link.idleTimer);
        link.sessions++;
        return link;
      }
      // every connection is full: one more, shared by whoever waits for it
      this.dialing ??= this.dialExtra().finally(() => (this.dialing = undefined));
      await this.dialing;
    }
  }

  private async primaryOf(): Promise<SessionLink> {
    const client = await this.primary();
    if (this.primaryLink?.client !== client) {
      this.primaryLink = { client, sessions: 0, cap: this.maxSessions };
    }
    return this.primaryLink;
  }

  private async dialExtra(): Promise<SessionLink> {
    const client = await this.dial();
    const link: SessionLink = { client, sessions: 0, cap: this.maxSessions };
    this.extra.push(link);
    client.once("close", () => {
      const at = this.extra.indexOf(link);
      if (at >= 0) this.extra.splice(at, 1);
    });
    return link;
  }

  private release(link: SessionLink): void {
    link.sessions = Math.max(0, link.sessions - 1);
    if (link.sessions > 0 || link === this.primaryLink || !this.extra.includes(link)) return;
    link.idleTimer = setTimeout(() => {
      if (link.sessions > 0) return;
      const at = this.extra.indexOf(link);
      if (at >= 0) this.extra.splice(at, 1);
      link.client.end();
    }, EXTRA_IDLE_MS);
    link.idleTimer.unref();
  }
}
