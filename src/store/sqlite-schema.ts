import type { Queryable } from "./database.js";

/** The columns of a SQLite table (none when it does not exist). */
export async function sqliteColumns(db: Queryable, table: string): Promise<Set<string>> {
  const rows = await db.query<{ name: string }>("SELECT name FROM pragma_table_info($1)", [table]);
  return new Set(rows.map((r) => r.name));
}
