import Database from "better-sqlite3";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AffinetesError } from "../../../src/errors.js";
import type { ControlStore } from "../../../src/control/control-store.js";
import { openControlStore } from "../../../src/control/store/sql-control-store.js";
import type { InstanceStore } from "../../../src/rollout/instance-store.js";
import { openInstanceStore } from "../../../src/rollout/store/sql-instance-store.js";
import { container, controlStoreConformance, disk } from "./control-store-conformance.js";
import { record } from "../../rollout/store/instance-store-conformance.js";

let file = "";

function freshFile(): string {
  return join(mkdtempSync(join(tmpdir(), "affinetes-control-store-")), "service.db");
}

controlStoreConformance({
  name: "sqlite",
  open: async () => {
    file = freshFile();
    return openControlStore(file);
  },
  reopen: () => openControlStore(file),
});

describe("sqlite control store sharing the service's file", () => {
  it("works next to the instance store on one file, both open at once, in either opening order", async () => {
    for (const instancesFirst of [true, false]) {
      const shared = freshFile();
      let instances: InstanceStore;
      let control: ControlStore;
      if (instancesFirst) {
        instances = await openInstanceStore(shared);
        control = await openControlStore(shared);
      } else {
        control = await openControlStore(shared);
        instances = await openInstanceStore(shared);
      }
      await instances.admit(record("run-1", { resources: { cpus: 2 } }), { instances: 5 });
      await control.createDisk(disk("disk_1"));
      await control.createContainer(container("ctr_1", { diskId: "disk_1", status: "running" }));
      await instances.touch("run-1", 2_000);
      expect(await instances.get("run-1")).toMatchObject({ numCmd: 1, lastUsedAt: 2_000 });
      expect(await instances.allocated(["instances", "cpus"])).toEqual({ instances: 1, cpus: 2 });
      expect((await control.containersUsingDisk("disk_1")).map((c) => c.id)).toEqual(["ctr_1"]);
      await instances.close();
      await control.close();

      // both reopen the file and see each other's writes intact
      const instances2 = await openInstanceStore(shared);
      const control2 = await openControlStore(shared);
      expect((await instances2.list()).map((r) => r.runId)).toEqual(["run-1"]);
      expect(await control2.getDisk("disk_1")).toStrictEqual(disk("disk_1"));
      expect(await control2.getContainer("ctr_1")).toStrictEqual(
        container("ctr_1", { diskId: "disk_1", status: "running" }),
      );
      const db = new Database(shared, { readonly: true });
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all();
      db.close();
      expect(tables).toEqual([
        { name: "affinetes_containers" },
        { name: "affinetes_disks" },
        { name: "affinetes_instances" },
        { name: "affinetes_schema" }, // each table set's schema version
      ]);
      await instances2.close();
      await control2.close();
    }
  });

  it("upgrades a file of the earlier layout: disk names unique per owner, containers with a network", async () => {
    const earlier = freshFile();
    const db = new Database(earlier);
    db.exec(`
      CREATE TABLE disks (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, backend TEXT NOT NULL,
        location TEXT NOT NULL, owner TEXT NOT NULL, users TEXT NOT NULL, created_at INTEGER NOT NULL);
      CREATE TABLE containers (id TEXT PRIMARY KEY, owner TEXT NOT NULL, disk_id TEXT, disk_path TEXT NOT NULL,
        volumes TEXT NOT NULL, image TEXT NOT NULL, command TEXT, init_script TEXT, env TEXT NOT NULL,
        metadata TEXT NOT NULL, vcpu_count REAL, mem_size_mib REAL, ports TEXT NOT NULL, status TEXT NOT NULL,
        exit_code INTEGER, error TEXT, runtime_id TEXT, created_at INTEGER NOT NULL, finished_at INTEGER);
      INSERT INTO disks VALUES ('disk_2', 'second', 'local', '/d/2', 'bob', '{"alice":"read"}', 5);
      INSERT INTO disks VALUES ('disk_1', 'app-ml', 'local', '/d/1', 'bob', '{}', 5);
      INSERT INTO containers VALUES ('ctr_old', 'bob', 'disk_1', '/mnt/disk', '[]', 'img:1', NULL, NULL, '{}',
        '{}', NULL, NULL, '[]', 'exited', 0, NULL, 'r', 1, 2);
    `);
    db.close();
    // two processes opening the old file at once: one upgrades it, the other finds it upgraded
    const [store, other] = await Promise.all([openControlStore(earlier), openControlStore(earlier)]);
    try {
      expect((await store.listDisks()).map((d) => d.id)).toEqual(["disk_2", "disk_1"]);
      expect(await store.getDiskByName("bob", "second")).toStrictEqual(
        disk("disk_2", {
          name: "second",
          location: "/d/2",
          owner: "bob",
          users: { alice: "read" },
          createdAt: 5,
        }),
      );
      await store.createDisk(disk("disk_3", { name: "app-ml", owner: "alice" }));
      await expect(other.createDisk(disk("disk_4", { name: "app-ml", owner: "bob" }))).rejects.toBeInstanceOf(
        AffinetesError,
      );
      expect((await store.getDiskByName("alice", "app-ml"))?.id).toBe("disk_3");
      expect((await other.getContainer("ctr_old"))?.network).toBe("full");
    } finally {
      await store.close();
      await other.close();
    }
  });

  it("refuses a file whose disks table is someone else's, instead of misreading it", async () => {
    const foreign = freshFile();
    const db = new Database(foreign);
    db.exec("CREATE TABLE disks (serial TEXT PRIMARY KEY, size_gb INTEGER)");
    db.close();
    const refused = await openControlStore(foreign).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(AffinetesError);
    expect((refused as Error).message).toMatch(/"disks" table .*missing id, name/);
  });
});
