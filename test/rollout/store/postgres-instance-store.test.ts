import { afterAll, beforeAll, describe, expect, it } from "vitest";
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

describe.skipIf(!hasPostgres)("postgres instance store upgrading an earlier layout", () => {
  it("opens a database written before the owner and principal columns existed, keeping its rows", async () => {
    const earlier = await isolatedSchema("instance_store_earlier");
    try {
      await sql(
        earlier.url,
        `CREATE TABLE affinetes_instances (run_id TEXT PRIMARY KEY, container_name TEXT,
           container_type TEXT NOT NULL, image TEXT NOT NULL, resources JSONB NOT NULL, runtime_id TEXT,
           state TEXT NOT NULL, created_at BIGINT NOT NULL, last_used_at BIGINT NOT NULL,
           num_cmd INTEGER NOT NULL DEFAULT 0, config JSONB NOT NULL);
         INSERT INTO affinetes_instances VALUES ('old', NULL, 'docker', 'img', '{"cpus":1}', 'c1', 'running', 1, 2, 3, '{}')`,
      );
      const store = await openInstanceStore(earlier.url);
      try {
        expect(await store.get("old")).toMatchObject({ runId: "old", owner: "", principal: "", numCmd: 3 });
        expect(await store.allocated(["cpus", "instances"])).toEqual({ cpus: 1, instances: 1 });
        expect(await store.list({ principal: "alice" })).toEqual([]);
      } finally {
        await store.close();
      }
    } finally {
      await earlier.drop();
    }
  });
});
