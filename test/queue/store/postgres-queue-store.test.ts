import { Colonies, funcSpec, newIdentity } from "../../../src/index.js";
import { killAndWait } from "../../helpers/client-process.js";
import { serve } from "../../helpers/service.js";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { newId } from "../../../src/queue/model.js";
import { PostgresQueueStore } from "../../../src/queue/store/postgres-queue-store.js";
import { hasPostgres, postgresUrl } from "../../helpers/postgres.js";
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

async function sql(statement: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    return await client.query(statement);
  } finally {
    await client.end();
  }
}

describe.skipIf(!hasPostgres)("postgres", () => {
  queueStoreConformance({
    name: "postgres",
    open: async () => {
      const store = await PostgresQueueStore.connect(postgresUrl);
      await sql(`TRUNCATE ${TABLES.join(", ")}`); // every test starts empty
      return store;
    },
    reopen: () => PostgresQueueStore.connect(postgresUrl),
  });

  describe("postgres queue store across replicas", () => {
    it("replicas connecting together to an empty database create the schema once", async () => {
      await sql(`DROP TABLE IF EXISTS ${TABLES.join(", ")}`);
      const replicas = await Promise.all(
        Array.from({ length: 4 }, () => PostgresQueueStore.connect(postgresUrl)),
      );
      try {
        const { rows } = await sql(
          "SELECT tablename FROM pg_tables WHERE tablename LIKE 'affinetes\\_q\\_%' ORDER BY tablename",
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
      }
    });
  });

  describe("afs serve with the queue in PostgreSQL", () => {
    it("two service replicas on one database share the queue: each process is assigned once", async () => {
      const server = newIdentity();
      const owner = newIdentity();
      const args = ["--db", postgresUrl, "--colonies-server-id", server.id];
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
