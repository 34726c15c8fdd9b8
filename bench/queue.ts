/**
 * The process queue (ColonyOS protocol at `afs serve`'s POST /api), measured from a real
 * service process with our SDK:
 *  - submits per second, one sequential client;
 *  - assign + close per second, one sequential executor;
 *  - the same with 8 concurrent clients and 8 concurrent executors;
 *  - with the SQLite store, and with PostgreSQL when BENCH_POSTGRES_URL (default the test
 *    database of .ci/setup-postgres.sh) answers;
 *  - the floor: raw HTTP round trips (GET /health) to the same service, one at a time.
 * The reference is ColonyOS's published figures for one sequential Python client (about
 * 190 submits/s and 68 assign+close/s); there is no ColonyOS server on this machine to
 * run side by side, so that row is quoted, not measured.
 *
 *   npm run bench:queue
 */
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { Pool } from "undici";
import { Colonies, funcSpec, newIdentity } from "../src/index.js";
import type { Identity } from "../src/index.js";
import { writeSection } from "./results-file.js";

const N = Number(process.env.BENCH_QUEUE_PROCESSES ?? 2000);
const CONCURRENCY = 8;
const server = newIdentity();
const colony = newIdentity();
// unique: a PostgreSQL database may keep an earlier run's colony
const colonyname = `bench-${Date.now().toString(36)}`;
const postgresUrl =
  process.env.BENCH_POSTGRES_URL ?? "postgres://affinetes:affinetes@127.0.0.1:5432/affinetes_test";

async function startService(db: string): Promise<{ url: string; stop: () => void }> {
  const child = spawn(
    process.execPath,
    ["dist/cli/main.js", "serve", "--port", "0", "--db", db, "--colonies-server-id", server.id],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match?.[1]) resolve(match[1]);
    });
    child.once("exit", (code) => reject(new Error(`afs serve exited with ${code}`)));
  });
  return { url, stop: () => child.kill("SIGTERM") };
}

async function executor(colonies: Colonies, name: string, type: string): Promise<Identity> {
  const identity = newIdentity();
  await colonies.addExecutor(
    { executorid: identity.id, executortype: type, executorname: name, colonyname },
    colony.privateKey,
  );
  await colonies.approveExecutor(colonyname, name, colony.privateKey);
  return identity;
}

/** Submits `count` processes from `clients` concurrent loops; processes per second. */
async function submits(colonies: Colonies, type: string, count: number, clients: number): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < count) {
        next++;
        await colonies.submitFuncSpec(
          funcSpec({ funcname: "f", colonyname, executortype: type }),
          colony.privateKey,
        );
      }
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

/** Assigns and closes until the queue of `type` is empty, from the given executors; per second. */
async function drains(colonies: Colonies, executors: Identity[], count: number): Promise<number> {
  const started = performance.now();
  let done = 0;
  await Promise.all(
    executors.map(async (e) => {
      for (;;) {
        const process = await colonies.assign(colonyname, -1, e.privateKey);
        if (!process) return;
        await colonies.close(process.processid, [], e.privateKey);
        done++;
      }
    }),
  );
  if (done !== count) throw new Error(`drained ${done} of ${count}`);
  return count / ((performance.now() - started) / 1000);
}

/** Sequential raw HTTP round trips to the service (GET /health), per second: the floor under every call. */
async function rawRoundTrips(url: string, count: number): Promise<number> {
  const pool = new Pool(url, { connections: 1 });
  try {
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      const res = await pool.request({ method: "GET", path: "/health" });
      await res.body.dump();
    }
    return count / ((performance.now() - started) / 1000);
  } finally {
    await pool.close();
  }
}

async function postgresAnswers(): Promise<boolean> {
  const client = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const rows: string[] = [];
const row = (what: string, store: string, perSecond: number, reference: string) => {
  const line = `| ${what} | ${store} | ${perSecond.toFixed(0)} | ${reference} |`;
  rows.push(line);
  console.log(line);
};

/** Every row against one service on `db`. */
async function measure(store: string, db: string): Promise<void> {
  const service = await startService(db);
  const colonies = new Colonies(service.url);
  try {
    await colonies.addColony({ colonyid: colony.id, name: colonyname }, server.privateKey);
    const one = [await executor(colonies, "one", "seq")];
    const eight = await Promise.all(
      Array.from({ length: CONCURRENCY }, (_, i) => executor(colonies, `par-${i}`, "par")),
    );
    row(
      "raw HTTP round trip (GET /health), 1 client",
      store,
      await rawRoundTrips(service.url, N),
      "the floor",
    );
    row(
      "submit, 1 sequential client",
      store,
      await submits(colonies, "seq", N, 1),
      "≈190/s (ColonyOS, 1 Python client, published)",
    );
    row(
      "assign + close, 1 sequential executor",
      store,
      await drains(colonies, one, N),
      "≈68/s (ColonyOS, published)",
    );
    row(
      `submit, ${CONCURRENCY} concurrent clients`,
      store,
      await submits(colonies, "par", N, CONCURRENCY),
      "—",
    );
    row(`assign + close, ${CONCURRENCY} concurrent executors`, store, await drains(colonies, eight, N), "—");
    await colonies.removeColony(colonyname, server.privateKey);
  } finally {
    await colonies.disconnect();
    service.stop();
  }
}

await measure("SQLite", join(mkdtempSync(join(tmpdir(), "affinetes-bench-queue-")), "service.db"));
if (await postgresAnswers()) await measure("PostgreSQL", postgresUrl);
else console.log(`PostgreSQL rows skipped: nothing answers at ${postgresUrl}`);

writeSection(
  "queue",
  `## Process queue (ColonyOS protocol)

Written by \`npm run bench:queue\` (bench/queue.ts) on ${new Date().toISOString().slice(0, 10)}:
${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}.
${N} processes per row, through a real \`afs serve\` process and our SDK; every request signed
(secp256k1, libsecp256k1) by the client and its signer recovered by the server.

| what | store | per second (ours) | reference |
| --- | --- | --- | --- |
${rows.join("\n")}

The reference figures are ColonyOS's published ones for one sequential Python client
against its Go server with PostgreSQL; no ColonyOS server runs on this machine, so they are
quoted, not measured side by side. With PostgreSQL every acknowledged change is committed
durably (\`synchronous_commit\` on: a WAL flush per submit, two per assign+close), which is
what bounds its sequential rows here, not the round trips. Client and server share the machine's ${cpus().length} cores.
`,
);
console.log("\nwritten to bench/RESULTS.md");
