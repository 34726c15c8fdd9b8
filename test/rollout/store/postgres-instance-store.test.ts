import pg from "pg";
import { describe } from "vitest";
import { PostgresInstanceStore } from "../../../src/rollout/store/postgres-instance-store.js";
import { hasPostgres, postgresUrl } from "../../helpers/postgres.js";
import { storeConformance } from "./instance-store-conformance.js";

describe.skipIf(!hasPostgres)("postgres", () => {
  storeConformance({
    name: "postgres",
    open: async () => {
      const store = await PostgresInstanceStore.connect(postgresUrl);
      const client = new pg.Client({ connectionString: postgresUrl });
      await client.connect();
      await client.query("TRUNCATE affinetes_instances"); // every test starts empty
      await client.end();
      return store;
    },
    reopen: () => PostgresInstanceStore.connect(postgresUrl),
  });
});
