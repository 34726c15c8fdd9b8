import type { Dialect } from "./dialect.js";

/** PostgreSQL's SQLSTATE of a unique violation. */
const UNIQUE_VIOLATION = "23505";

/** PostgreSQL: JSON columns the stores query are `jsonb`, with its operators. */
export const postgresDialect: Dialect = {
  name: "postgres",
  forUpdate: " FOR UPDATE",
  forUpdateSkipLocked: " FOR UPDATE SKIP LOCKED",
  noLimit: null,
  jsonValue: (column, key) => `(${column} ->> CAST(${key} AS text))`,
  jsonHasKey: (column, key) => `jsonb_exists(${column}, CAST(${key} AS text))`,
  jsonHasText: (column, key, value) =>
    `${column} @> jsonb_build_object(CAST(${key} AS text), CAST(${value} AS text))`,
  jsonArrayHas: (column, value) => `${column} @> jsonb_build_array(CAST(${value} AS text))`,
  jsonArrayHasField: (column, field, value) =>
    `${column} @> jsonb_build_array(jsonb_build_object('${field}', CAST(${value} AS text)))`,
  inList: (column, param) => `${column} = ANY(CAST(${param} AS text[]))`,
  list: (values) => [...values],
  types: {
    doc: "JSON",
    json: "JSONB",
    bigint: "BIGINT",
    smallint: "SMALLINT",
    double: "DOUBLE PRECISION",
    bool: "BOOLEAN",
    serialKey: "BIGSERIAL PRIMARY KEY",
    serial: "BIGSERIAL",
    key: "PRIMARY KEY",
  },
  isUniqueViolation: (err) => (err as { code?: unknown } | null)?.code === UNIQUE_VIOLATION,
};
