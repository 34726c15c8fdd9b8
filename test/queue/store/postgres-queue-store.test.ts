import { Colonies, funcSpec, newIdentity } from "../../../src/index.js";
import { killAndWait } from "../../helpers/client-process.js";
import { serve } from "../../helpers/service.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId } from "../../../src/queue/model.js";
import { openQueueStore } from "../../../src/queue/store/sql-queue-store.js";
import { hasPostgres, isolatedSchema, sql } from "../../helpers/postgres.js";
import { colony, proc, queueStoreConformance } from "./queue-store-conformance.js";

const TABLES = [
  "affinetes_q_colonies",
  "affinetes_q_executors",
  "affinetes_q_processes",
  "affinetes_q_graphs",
  "affinetes_q_logs",
  "affinetes_q_objects",
  "affinetes_q_channels",
];

describe.skipIf(!hasPostgres)("postgres", () => {
  let db = { url: "", drop: async () => {} };
  beforeAll(async () => {
    db = await isolatedSchema("queue_store");
  });
  afterAll(() => db.drop());

  queueStoreConformance({
    name: "postgres",
    open: async () => {
      const store = await openQueueStore(db.url);
      await sql(db.url, `TRUNCATE ${TABLES.join(", ")}`); // every test starts empty
      return store;
    },
    reopen: () => openQueueStore(db.url),
  });

  describe("postgres queue store across replicas", () => {
    it("replicas connecting together to an empty database create the schema once", async () => {
      const empty = await isolatedSchema("queue_store_empty");
      const replicas = await Promise.all(Array.from({ length: 4 }, () => openQueueStore(empty.url)));
      try {
        const { rows } = await sql(
          empty.url,
          `SELECT tablename FROM pg_tables WHERE tablename LIKE 'affinetes\\_q\\_%'
           AND schemaname = current_schema() ORDER BY tablename`,
        );
        expect(rows.map((r: { tablename: string }) => r.tablename)).toEqual([...TABLES].sort());
        const dev = colony("dev");
        await replicas[0]!.addColony(dev);
        const p = proc();
        await replicas[1]!.addProcesses([p]);
        for (const replica of replicas) {
          expect(await replica.getColony("dev")).toStrictEqual(dev);
          expect(await replica.getProcess(p.processid)).toStrictEqual(p);
        }
        expect(await replicas[2]!.getProcess(newId())).toBeUndefined();
      } finally {
        await Promise.all(replicas.map((r) => r.close()));
        await empty.drop();
      }
    });
  });

  describe("afs serve with the queue in PostgreSQL", () => {
    it("two service replicas on one database share the queue: each process is assigned once", async () => {
      const server = newIdentity();
      const owner = newIdentity();
      const args = ["--db", db.url, "--colonies-server-id", server.id];
      const replicas = await Promise.all([
        serve(...args, "--service-id", "q-a"),
        serve(...args, "--service-id", "q-b"),
      ]);
      const clients = replicas.map((r) => new Colonies(r.url));
      try {
        await clients[0]!.addColony({ colonyid: owner.id, name: "pg" }, server.privateKey);
        const workers = [newIdentity(), newIdentity()];
        for (const [i, w] of workers.entries()) {
          await clients[0]!.addExecutor(
            { executorid: w.id, executortype: "t", executorname: `w${i}`, colonyname: "pg" },
            owner.privateKey,
          );
          await clients[1]!.approveExecutor("pg", `w${i}`, owner.privateKey);
        }
        const submitted = await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            clients[i % 2]!.submitFuncSpec(
              funcSpec({ funcname: "f", colonyname: "pg", executortype: "t" }),
              owner.privateKey,
            ),
          ),
        );
        // each worker asks its own replica
        const ran = await Promise.all(
          workers.map(async (w, i) => {
            const mine: string[] = [];
            for (;;) {
              const p = await clients[i]!.assign("pg", -1, w.privateKey);
              if (!p) return mine;
              mine.push(p.processid);
              await clients[i]!.close(p.processid, [], w.privateKey);
            }
          }),
        );
        expect(ran.flat().sort()).toEqual(submitted.map((p) => p.processid).sort());
      } finally {
        await Promise.all(clients.map((c) => c.disconnect()));
        await Promise.all(replicas.map((r) => killAndWait(r.child, "SIGTERM")));
      }
    });
  });
});
