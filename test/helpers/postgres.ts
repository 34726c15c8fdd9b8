import pg from "pg";
import { inCi } from "./docker.js";

/** The test database .ci/setup-postgres.sh creates (or AFFINETES_TEST_POSTGRES_URL). */
export const postgresUrl =
  process.env.AFFINETES_TEST_POSTGRES_URL ?? "postgres://affinetes:affinetes@127.0.0.1:5432/affinetes_test";

async function probe(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const problem = await probe();
if (problem && inCi) throw new Error(`CI requires PostgreSQL (.ci/setup-postgres.sh starts it): ${problem}`);
if (problem) console.warn(`[affinetes tests] PostgreSQL tests skipped: ${problem}`);

export const hasPostgres = problem === undefined;

/** Runs one statement on the database at `url`. */
export async function sql(url: string, statement: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(statement, params);
  } finally {
    await client.end();
  }
}

/** A URL whose connections work in `schema` (and create their tables there). */
export function schemaUrl(schema: string): string {
  const options = encodeURIComponent(`-c search_path=${schema}`);
  return `${postgresUrl}${postgresUrl.includes("?") ? "&" : "?"}options=${options}`;
}

/**
 * A schema of the test database for one test file alone, empty: its tables, and its
 * LISTEN/NOTIFY channels (named after the schema), never meet another run's. `drop` removes it.
 */
export async function isolatedSchema(name: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const schema = `test_${name}_${process.pid}`.replace(/\W/g, "_").toLowerCase();
  await sql(postgresUrl, `DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
  return {
    url: schemaUrl(schema),
    drop: async () => void (await sql(postgresUrl, `DROP SCHEMA IF EXISTS ${schema} CASCADE`)),
  };
}
