import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteQueueStore } from "../../../src/queue/store/sqlite-queue-store.js";
import { queueStoreConformance } from "./queue-store-conformance.js";

let file = "";

queueStoreConformance({
  name: "sqlite",
  open: async () => {
    file = join(mkdtempSync(join(tmpdir(), "affinetes-queue-store-")), "queue.db");
    return new SqliteQueueStore(file);
  },
  reopen: async () => new SqliteQueueStore(file),
});
