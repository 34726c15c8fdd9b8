import type { Queryable } from "./database.js";

/** What a SQLite migration looks at before it changes a table of an earlier layout. */

/** The columns of a SQLite table (none when it does not exist). */
export async function sqliteColumns(db: Queryable, table: string): Promise<Set<string>> {
  const rows = await db.query<{ name: string }>("SELECT name FROM pragma_table_info($1)", [table]);
  return new Set(rows.map((r) => r.name));
}

/** Whether a SQLite table has a UNIQUE index on exactly `columns`, in that order. */
export async function sqliteHasUniqueIndexOn(
  db: Queryable,
  table: string,
  columns: readonly string[],
): Promise<boolean> {
  const indexes = await db.query<{ name: string; unique: number }>(
    'SELECT name, "unique" FROM pragma_index_list($1)',
    [table],
  );
  for (const index of indexes.filter((i) => i.unique)) {
    const names = (
      await db.query<{ name: string }>("SELECT name FROM pragma_index_info($1) ORDER BY seqno", [index.name])
    ).map((c) => c.name);
    if (names.length === columns.length && names.every((n, i) => n === columns[i])) return true;
  }
  return false;
}
