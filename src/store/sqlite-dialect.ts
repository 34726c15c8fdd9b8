import type { Dialect } from "./dialect.js";

/** SQLite: JSON is text, read with json_each (keys compared exactly, no JSON path built from them). */
export const sqliteDialect: Dialect = {
  name: "sqlite",
  forUpdate: "",
  forUpdateSkipLocked: "",
  noLimit: -1,
  jsonValue: (column, key) => `(SELECT je.value FROM json_each(${column}) AS je WHERE je.key = ${key})`,
  jsonHasKey: (column, key) => `EXISTS (SELECT 1 FROM json_each(${column}) AS je WHERE je.key = ${key})`,
  jsonHasText: (column, key, value) =>
    `EXISTS (SELECT 1 FROM json_each(${column}) AS je WHERE je.key = ${key} AND je.type = 'text' AND je.value = ${value})`,
  jsonArrayHas: (column, value) =>
    `EXISTS (SELECT 1 FROM json_each(${column}) AS je WHERE je.type = 'text' AND je.value = ${value})`,
  jsonArrayHasField: (column, field, value) =>
    `EXISTS (SELECT 1 FROM json_each(${column}) AS je WHERE json_extract(je.value, '$.${field}') = ${value})`,
  inList: (column, param) => `${column} IN (SELECT value FROM json_each(${param}))`,
  list: (values) => JSON.stringify(values),
  types: {
    doc: "TEXT",
    json: "TEXT",
    bigint: "INTEGER",
    smallint: "INTEGER",
    double: "REAL",
    bool: "INTEGER",
    serialKey: "INTEGER PRIMARY KEY AUTOINCREMENT",
    serial: "INTEGER PRIMARY KEY",
    key: "UNIQUE",
  },
  isUniqueViolation: (err) => {
    const code = (err as { code?: unknown } | null)?.code;
    return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY";
  },
};
