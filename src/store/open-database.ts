import type { Database } from "./database.js";
import { isPostgresUrl } from "./database-location.js";
import { PostgresDatabase } from "./postgres-database.js";
import { SqliteDatabase } from "./sqlite-database.js";

/**
 * Opens the database at `location`: a `postgres://` URL, or a SQLite file (created with
 * its folder when missing; `:memory:` for one that lives and dies with the handle).
 */
export async function openDatabase(location: string): Promise<Database> {
  return isPostgresUrl(location) ? PostgresDatabase.connect(location) : new SqliteDatabase(location);
}

/**
 * A store on a database of its own (a tool or a test, not the service): opens the
 * database at `location` and the store on it, which closes the database with itself.
 */
export async function openOwning<S>(
  location: string,
  open: (db: Database, options: { ownsDatabase: true }) => Promise<S>,
): Promise<S> {
  const db = await openDatabase(location);
  try {
    return await open(db, { ownsDatabase: true });
  } catch (err) {
    await db.close();
    throw err;
  }
}
