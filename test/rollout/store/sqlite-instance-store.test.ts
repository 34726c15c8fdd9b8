import Database from "better-sqlite3";
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { openInstanceStore } from "../../../src/rollout/store/sql-instance-store.js";
import { fixturePath } from "../../helpers/paths.js";
import { record, storeConformance } from "./instance-store-conformance.js";

const run = promisify(execFile);
let file = "";

storeConformance({
  name: "sqlite",
  open: async () => {
    file = join(mkdtempSync(join(tmpdir(), "affinetes-store-")), "service.db");
    return openInstanceStore(file);
  },
  reopen: () => openInstanceStore(file),
});

describe("sqlite store across processes", () => {
  // Catches limits kept per process (20 would be admitted). It cannot provoke a collision
  // inside one transaction (they last microseconds): BEGIN IMMEDIATE is what excludes that.
  it("two service processes on one file admit exactly the limit between them (counts live in the file)", async () => {
    const shared = join(mkdtempSync(join(tmpdir(), "affinetes-store-")), "service.db");
    await (await openInstanceStore(shared)).close(); // create the schema first
    const worker = `${fixturePath("")}admit-worker.mjs`;
    const counts = await Promise.all(
      ["a", "b"].map((prefix) =>
        run(process.execPath, [worker, shared, prefix, "25"]).then((r) => Number(r.stdout)),
      ),
    );
    expect(counts[0]! + counts[1]!).toBe(10);
    const store = await openInstanceStore(shared);
    expect(await store.allocated(["instances"])).toEqual({ instances: 10 });
    await store.close();
  });
});

describe("sqlite store migration", () => {
  it("opens a file written before the owner and principal columns existed, keeping its rows", async () => {
    const old = join(mkdtempSync(join(tmpdir(), "affinetes-store-")), "service.db");
    const db = new Database(old);
    db.exec(`CREATE TABLE instances (run_id TEXT PRIMARY KEY, container_name TEXT, container_type TEXT NOT NULL,
      image TEXT NOT NULL, resources TEXT NOT NULL, runtime_id TEXT, state TEXT NOT NULL,
      created_at INTEGER NOT NULL, last_used_at INTEGER NOT NULL, num_cmd INTEGER NOT NULL DEFAULT 0,
      config TEXT NOT NULL)`);
    db.prepare(
      `INSERT INTO instances VALUES ('old', NULL, 'docker', 'img', '{"cpus":1}', 'c1', 'running', 1, 2, 3, '{}')`,
    ).run();
    db.close();
    const store = await openInstanceStore(old);
    expect(await store.get("old")).toMatchObject({
      runId: "old",
      owner: "",
      principal: "", // the admin's only
      numCmd: 3,
      resources: { cpus: 1 },
    });
    expect(await store.allocated(["cpus", "instances"])).toEqual({ cpus: 1, instances: 1 });
    expect(await store.list({ principal: "alice" })).toEqual([]);
    await store.close();
  });

  it("opens a file of the version with owner but no principal: its runs are the admin's only", async () => {
    const old = join(mkdtempSync(join(tmpdir(), "affinetes-store-")), "service.db");
    const db = new Database(old);
    db.exec(`CREATE TABLE instances (run_id TEXT PRIMARY KEY, owner TEXT NOT NULL DEFAULT '', container_name TEXT,
      container_type TEXT NOT NULL, image TEXT NOT NULL, resources TEXT NOT NULL, runtime_id TEXT, state TEXT NOT NULL,
      created_at INTEGER NOT NULL, last_used_at INTEGER NOT NULL, num_cmd INTEGER NOT NULL DEFAULT 0,
      config TEXT NOT NULL)`);
    db.prepare(
      `INSERT INTO instances VALUES ('v2', 'svc', NULL, 'local', '', '{}', 'p1', 'running', 1, 2, 0, '{}')`,
    ).run();
    db.close();
    const store = await openInstanceStore(old);
    expect(await store.get("v2")).toMatchObject({ runId: "v2", owner: "svc", principal: "" });
    await store.admit(record("new", { principal: "alice" }), {});
    expect((await store.list({ principal: "alice" })).map((r) => r.runId)).toEqual(["new"]);
    await store.close();
  });
});
