import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openQueueStore } from "../../../src/queue/store/sql-queue-store.js";
import { queueStoreConformance } from "./queue-store-conformance.js";

let file = "";

queueStoreConformance({
  name: "sqlite",
  open: async () => {
    file = join(mkdtempSync(join(tmpdir(), "affinetes-queue-store-")), "queue.db");
    return openQueueStore(file);
  },
  reopen: () => openQueueStore(file),
});
