import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConflictError } from "../../../src/errors.js";
import type { ControlStore } from "../../../src/control/control-store.js";
import { openControlStore } from "../../../src/control/store/sql-control-store.js";
import { hasPostgres, isolatedSchema, sql } from "../../helpers/postgres.js";
import { controlStoreConformance, disk } from "./control-store-conformance.js";

describe.skipIf(!hasPostgres)("postgres", () => {
  let db = { url: "", drop: async () => {} };
  beforeAll(async () => {
    db = await isolatedSchema("control_store");
  });
  afterAll(() => db.drop());

  async function truncate(): Promise<void> {
    await sql(db.url, "TRUNCATE affinetes_disks, affinetes_containers"); // every test starts empty
  }

  controlStoreConformance({
    name: "postgres",
    open: async () => {
      const store = await openControlStore(db.url);
      await truncate();
      return store;
    },
    reopen: () => openControlStore(db.url),
  });

  describe("postgres control store upgrading an earlier layout", () => {
    it("makes disk names unique per owner and gives earlier containers the network 'full'", async () => {
      const earlier = await isolatedSchema("control_store_earlier"); // a database of that release
      const client = new pg.Client({ connectionString: earlier.url });
      await client.connect();
      try {
        await client.query(`
          CREATE TABLE affinetes_disks (seq BIGSERIAL, id TEXT PRIMARY KEY,
            name TEXT NOT NULL CONSTRAINT affinetes_disks_name_unique UNIQUE, backend TEXT NOT NULL,
            location TEXT NOT NULL, owner TEXT NOT NULL, users JSONB NOT NULL, created_at BIGINT NOT NULL);
          CREATE TABLE affinetes_containers (seq BIGSERIAL, id TEXT PRIMARY KEY, owner TEXT NOT NULL, disk_id TEXT,
            disk_path TEXT NOT NULL, volumes JSONB NOT NULL, image TEXT NOT NULL, command TEXT, init_script TEXT,
            env JSONB NOT NULL, metadata JSONB NOT NULL, vcpu_count DOUBLE PRECISION, mem_size_mib DOUBLE PRECISION,
            ports JSONB NOT NULL, status TEXT NOT NULL, exit_code INTEGER, error TEXT, runtime_id TEXT,
            created_at BIGINT NOT NULL, finished_at BIGINT);
          INSERT INTO affinetes_disks (id, name, backend, location, owner, users, created_at)
            VALUES ('disk_1', 'app-ml', 'local', '/d/1', 'bob', '{}', 5);
          INSERT INTO affinetes_containers (id, owner, disk_path, volumes, image, env, metadata, ports, status, created_at)
            VALUES ('ctr_old', 'bob', '/mnt/disk', '[]', 'img:1', '{}', '{}', '[]', 'exited', 1);
        `);
      } finally {
        await client.end();
      }
      const replicas = await Promise.all([1, 2].map(() => openControlStore(earlier.url)));
      try {
        const [store, other] = replicas as [ControlStore, ControlStore];
        await store.createDisk(disk("disk_2", { name: "app-ml", owner: "alice" }));
        await expect(
          other.createDisk(disk("disk_3", { name: "app-ml", owner: "bob" })),
        ).rejects.toBeInstanceOf(ConflictError);
        expect((await other.getDiskByName("alice", "app-ml"))?.id).toBe("disk_2");
        expect((await other.getDiskByName("bob", "app-ml"))?.id).toBe("disk_1");
        expect((await store.getContainer("ctr_old"))?.network).toBe("full");
      } finally {
        await Promise.all(replicas.map((r) => r.close()));
        await earlier.drop();
      }
    });
  });

  describe("postgres control store across replicas", () => {
    it("replicas connecting together create the schema once, and take a disk name once between them", async () => {
      const replicas = await Promise.all(Array.from({ length: 4 }, () => openControlStore(db.url)));
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
