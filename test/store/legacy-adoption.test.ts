import BetterSqlite from "better-sqlite3";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { ContainerRecord, DiskRecord } from "../../src/control/control-store.js";
import { SqlControlStore } from "../../src/control/store/sql-control-store.js";
import type { ChannelEntry, Process, ProcessGraph } from "../../src/queue/model.js";
import { RUNNING, WAITING, timeString } from "../../src/queue/model.js";
import type { QueueStore } from "../../src/queue/queue-store.js";
import { SqlQueueStore } from "../../src/queue/store/sql-queue-store.js";
import type { InstanceRecord } from "../../src/rollout/instance-store.js";
import { SqlInstanceStore } from "../../src/rollout/store/sql-instance-store.js";
import { openDatabase } from "../../src/store/open-database.js";
import { fixturePath } from "../helpers/paths.js";
import { sql } from "../helpers/postgres.js";
import { storeTargets } from "./store-targets.js";

/**
 * Databases made by the stores before the one store layer (commit 14adfbc: SQLite's
 * `instances`, `disks`, `q_...` tables, PostgreSQL's `affinetes_...` ones, no schema
 * version), dumped by test/fixtures/store-legacy/make-legacy.mjs with what those stores
 * read back from them. The stores of today adopt them and read the same, then go on.
 */
const legacy = (file: string) => readFileSync(`${fixturePath("store-legacy")}/${file}`, "utf8");

interface QueueRead {
  colonies: unknown[];
  executors: unknown[];
  processes: Record<string, Process[]>;
  graphs: ProcessGraph[];
  logs: unknown[];
  users: unknown[];
  attributes: unknown[];
  functions: Array<{ functionid: string }>;
  channel: ChannelEntry[];
  counts: unknown;
}

interface Expected {
  instances: InstanceRecord[];
  disks: DiskRecord[];
  containers: ContainerRecord[];
  queue: QueueRead;
}

/** What the old stores read, as the generator recorded it (JSON: undefined fields left out). */
const expected = JSON.parse(legacy("expected.json")) as Record<"sqlite" | "postgres", Expected>;

/** Reads what make-legacy.mjs read, the same way. */
async function readQueue(store: QueueStore): Promise<QueueRead> {
  const processes: Record<string, Process[]> = {};
  for (const state of [0, 1, 2, 3])
    processes[state] = await store.listProcesses({ colonyname: "dev", state: state as 0, count: 100 });
  return {
    colonies: await store.listColonies(),
    executors: await store.listExecutors("dev"),
    processes,
    graphs: await store.listGraphs({ colonyname: "dev", state: WAITING, count: 10 }),
    logs: await store.getLogs({ processid: "d5".repeat(64), count: 10, since: 0 }),
    users: await store.listObjects("user", "dev"),
    attributes: await store.listObjects("attribute", "dev"),
    functions: await store.listObjects("function", "dev"),
    channel: await store.readChannel("d6".repeat(64), "chat", 0, 0),
    counts: await store.countByState("dev"),
  };
}

/** Loads the engine's dump into a fresh database; its location. */
async function loadDump(name: "sqlite" | "postgres", location: string): Promise<void> {
  if (name === "sqlite") {
    const db = new BetterSqlite(location);
    db.exec(legacy("sqlite.sql"));
    db.close();
  } else {
    await sql(location, legacy("postgres.sql"));
  }
}

const plain = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

describe.each(storeTargets)("a $name database of the release before schema versions", (target) => {
  it("is adopted and migrated without losing a row: every store reads what the old ones did, and goes on", async () => {
    const { location, drop } = await target.fresh();
    await loadDump(target.name, location);
    const db = await openDatabase(location);
    try {
      const instances = await SqlInstanceStore.open(db);
      const control = await SqlControlStore.open(db);
      const queue = await SqlQueueStore.open(db);
      const was = expected[target.name];

      expect(plain(await instances.list())).toEqual(was.instances);
      expect(await instances.allocated(["instances", "cpus", "memory_gb"])).toEqual({
        instances: 2,
        cpus: 2,
        memory_gb: 4,
      });
      expect(plain(await control.listDisks())).toEqual(was.disks); // one created_at: insertion order kept
      expect(plain(await control.listContainers())).toEqual(was.containers);
      expect((await control.containersUsingDisk("disk_b")).map((c) => c.id)).toEqual(["ctr_full"]);
      expect(plain(await readQueue(queue))).toEqual(was.queue);
      const full = await queue.getProcess("d1".repeat(64));
      expect(full?.spec.args).toEqual(["nul\u0000byte", 2 ** 60, "héllo ✓"]);

      // and it goes on: writes, and orders that follow the adopted rows
      await instances.admit({ ...was.instances[0]!, runId: "run-3", createdAt: 3_000 }, { instances: 3 });
      expect((await instances.list()).map((r) => r.runId)).toEqual(["run-1", "run-2", "run-3"]);
      await control.createDisk({ ...was.disks[0]!, id: "disk_c", name: "more" });
      expect((await control.listDisks()).map((d) => d.id)).toEqual(["disk_b", "disk_a", "disk_c"]);
      const worker = (await queue.listExecutors("dev"))[0]!;
      const assigned = await queue.assign(
        { colonyname: "dev", executorid: worker.executorid, executorname: "worker-1", executortype: "cpu" },
        (p) => ({ ...p, state: RUNNING, isassigned: true, assignedexecutorid: worker.executorid }),
      );
      expect(assigned?.spec.funcname).toBe("first"); // oldest priority, and the named one is not worker-1's
      await queue.appendChannel("d6".repeat(64), "dev", "chat", {
        ...was.queue.channel[1]!,
        sequence: 3,
        payload: "m3",
        timestamp: timeString(1),
      } as ChannelEntry);
      expect((await queue.readChannel("d6".repeat(64), "chat", 0, 0)).map((e) => e.sequence)).toEqual([
        1, 2, 3,
      ]);
      expect(await queue.putObject("function", was.queue.functions[0]!.functionid, "dev", {})).toBe(false);
      await queue.close();
    } finally {
      await db.close();
      await drop();
    }
  });
});
