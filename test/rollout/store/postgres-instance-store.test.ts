import { afterAll, beforeAll, describe } from "vitest";
import { openInstanceStore } from "../../../src/rollout/store/sql-instance-store.js";
import { hasPostgres, isolatedSchema, sql } from "../../helpers/postgres.js";
import { storeConformance } from "./instance-store-conformance.js";

describe.skipIf(!hasPostgres)("postgres", () => {
  let db = { url: "", drop: async () => {} };
  beforeAll(async () => {
    db = await isolatedSchema("instance_store");
  });
  afterAll(() => db.drop());

  storeConformance({
    name: "postgres",
    open: async () => {
      const store = await openInstanceStore(db.url);
      await sql(db.url, "TRUNCATE affinetes_instances"); // every test starts empty
      return store;
    },
    reopen: () => openInstanceStore(db.url),
  });
});
