/**
 * What differs between the two engines, as SQL fragments and values; everything else
 * in a store's SQL is written once. Fragment arguments are SQL expressions (a column, a
 * placeholder such as `$2`), never values: values always travel as parameters.
 */
export interface Dialect {
  readonly name: "sqlite" | "postgres";
  /**
   * Appended to a SELECT inside a transaction that then writes the rows it read: locks
   * them on PostgreSQL; empty on SQLite, whose one writer already excludes the others.
   */
  readonly forUpdate: string;
  /** As `forUpdate`, passing over rows another transaction holds instead of waiting for them. */
  readonly forUpdateSkipLocked: string;
  /** The LIMIT parameter meaning "no limit". */
  readonly noLimit: number | null;
  /** The value at `key` of a JSON object column (`key` matched exactly, never read as a path). */
  jsonValue(column: string, key: string): string;
  /** Whether a JSON object column has the key `key`. */
  jsonHasKey(column: string, key: string): string;
  /** Whether a JSON object column maps `key` to the string `value`. */
  jsonHasText(column: string, key: string, value: string): string;
  /** Whether a JSON array column holds the string `value`. */
  jsonArrayHas(column: string, value: string): string;
  /** Whether a JSON array column holds an object whose `field` (a fixed name) is the string `value`. */
  jsonArrayHasField(column: string, field: string, value: string): string;
  /** Whether `column` is one of the list `param` carries (a parameter made by `list`). */
  inList(column: string, param: string): string;
  /** The parameter value of a list of strings for `inList`. */
  list(values: readonly string[]): unknown;
  /** Whether `err` is the refusal of a row that a UNIQUE or PRIMARY KEY constraint excludes. */
  isUniqueViolation(err: unknown): boolean;
  /** Column types as each engine names them, so a table is declared once for both. */
  readonly types: ColumnTypes;
}

/** The types of the tables' DDL. */
export interface ColumnTypes {
  /** A JSON document no query looks inside (PostgreSQL's `json` keeps it as written, "\u0000" included). */
  doc: string;
  /** JSON the queries look inside. */
  json: string;
  bigint: string;
  smallint: string;
  double: string;
  bool: string;
  /** An insertion-order primary key. */
  serialKey: string;
  /** An insertion order beside the table's own key (SQLite: the rowid's alias, which makes the key merely `key`). */
  serial: string;
  /** The constraint of a table's own key when it has a `serial` (a column's, or `key (a, b)`). */
  key: string;
}
