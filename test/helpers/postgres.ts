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
