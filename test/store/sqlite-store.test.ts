import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { SqliteInstanceStore } from "../../src/store/sqlite-instance-store.js";
import { fixturePath } from "../helpers/paths.js";
import { storeConformance } from "./store-conformance.js";

const run = promisify(execFile);
let file = "";

storeConformance({
  name: "sqlite",
  open: async () => {
    file = join(mkdtempSync(join(tmpdir(), "affinetes-store-")), "service.db");
    return new SqliteInstanceStore(file);
  },
  reopen: async () => new SqliteInstanceStore(file),
});

describe("sqlite store across processes", () => {
  // Catches limits kept per process (20 would be admitted). It cannot provoke a collision
  // inside one transaction (they last microseconds): BEGIN IMMEDIATE is what excludes that.
  it("two service processes on one file admit exactly the limit between them (counts live in the file)", async () => {
    const shared = join(mkdtempSync(join(tmpdir(), "affinetes-store-")), "service.db");
    new SqliteInstanceStore(shared).close(); // create the schema first
    const worker = `${fixturePath("")}admit-worker.mjs`;
    const counts = await Promise.all(
      ["a", "b"].map((prefix) =>
        run(process.execPath, [worker, shared, prefix, "25"]).then((r) => Number(r.stdout)),
      ),
    );
    expect(counts[0]! + counts[1]!).toBe(10);
    const store = new SqliteInstanceStore(shared);
    expect(await store.allocated(["instances"])).toEqual({ instances: 10 });
    await store.close();
  });
});
