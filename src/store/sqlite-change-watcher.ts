/** How often a process looks whether another one changed the shared SQLite file. */
export const SQLITE_CHANGE_POLL_MS = 250;

/**
 * Notices commits made by other processes sharing a SQLite file: SQLite's
 * `PRAGMA data_version` changes when another connection commits, and only then (this
 * process's own commits leave it as it is). A read of one integer every
 * `SQLITE_CHANGE_POLL_MS`, only while someone listens.
 */
export class SqliteChangeWatcher {
  private timer: NodeJS.Timeout | undefined;
  private seen = 0;

  constructor(
    private readonly version: () => number,
    private readonly onChange: () => void,
  ) {}

  start(): void {
    if (this.timer) return;
    this.seen = this.version();
    this.timer = setInterval(() => this.check(), SQLITE_CHANGE_POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    let now: number;
    try {
      now = this.version();
    } catch {
      return; // closed under us, or busy: the next tick looks again
    }
    if (now === this.seen) return;
    this.seen = now;
    this.onChange();
  }
}
