import pg from "pg";
import { describe, expect, it } from "vitest";
import { ConflictError } from "../../src/errors.js";
import { PostgresControlStore } from "../../src/store/postgres-control-store.js";
import { hasPostgres, postgresUrl } from "../helpers/postgres.js";
import { controlStoreConformance, disk } from "./control-store-conformance.js";

async function truncate(): Promise<void> {
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  await client.query("TRUNCATE affinetes_disks, affinetes_containers"); // every test starts empty
  await client.end();
}

describe.skipIf(!hasPostgres)("postgres", () => {
  controlStoreConformance({
    name: "postgres",
    open: async () => {
      const store = await PostgresControlStore.connect(postgresUrl);
      await truncate();
      return store;
    },
    reopen: () => PostgresControlStore.connect(postgresUrl),
  });

  describe("postgres control store across replicas", () => {
    it("replicas connecting together create the schema once, and take a disk name once between them", async () => {
      const replicas = await Promise.all(
        Array.from({ length: 4 }, () => PostgresControlStore.connect(postgresUrl)),
      );
      try {
        await truncate();
        const results = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) =>
            replicas[i % replicas.length]!.createDisk(disk(`disk_r${i}`, { name: "contended" })),
          ),
        );
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        for (const r of results) {
          if (r.status === "rejected") expect(r.reason).toBeInstanceOf(ConflictError);
        }
        for (const replica of replicas) expect(await replica.listDisks()).toHaveLength(1);
      } finally {
        await Promise.all(replicas.map((r) => r.close()));
      }
    });
  });
});
