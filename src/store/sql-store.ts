import type { Database } from "./database.js";

/**
 * What every store written against the store layer shares: the database it queries, and
 * whether closing the store closes that database too (a store opened on a database of
 * its own) or leaves it to the service that shares it between its faces.
 */
export abstract class SqlStore {
  protected constructor(
    protected readonly db: Database,
    private readonly ownsDatabase: boolean,
  ) {}

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.ownsDatabase) await this.db.close();
  }
}
