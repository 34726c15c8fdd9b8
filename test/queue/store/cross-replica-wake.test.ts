import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Colonies, funcSpec, newIdentity } from "../../../src/index.js";
import type { Identity } from "../../../src/index.js";
import { SQLITE_CHANGE_POLL_MS } from "../../../src/store/sqlite-change-watcher.js";
import { killAndWait } from "../../helpers/client-process.js";
import { hasPostgres, isolatedSchema } from "../../helpers/postgres.js";
import { serve, serviceDb } from "../../helpers/service.js";

/** The bound: a submit on one replica wakes an executor long-polling another within it. */
const WAKE_MS = 200;
/** How long the executor's long-poll would wait if nobody woke it: far past every bound here. */
const LONG_POLL_S = 20;
const ROUNDS = 5;

/**
 * Two real `afs serve` processes on one database; an executor long-polls one of them
 * (already waiting when the process is submitted), a client submits on the other. Each
 * round measures from the submit's reply to the assign's reply.
 */
async function wakeTimes(db: string): Promise<number[]> {
  const server = newIdentity();
  const owner = newIdentity();
  const worker = newIdentity();
  const args = ["--db", db, "--colonies-server-id", server.id];
  const replicas = [
    await serve(...args, "--service-id", "wake-a"),
    await serve(...args, "--service-id", "wake-b"),
  ];
  const [submitter, executor] = replicas.map((r) => new Colonies(r.url)) as [Colonies, Colonies];
  try {
    await submitter.addColony({ colonyid: owner.id, name: "wake" }, server.privateKey);
    await submitter.addExecutor(
      { executorid: worker.id, executortype: "t", executorname: "w", colonyname: "wake" },
      owner.privateKey,
    );
    await submitter.approveExecutor("wake", "w", owner.privateKey);
    const times: number[] = [];
    for (let round = 0; round < ROUNDS; round++)
      times.push(await oneWake(submitter, executor, owner, worker));
    return times;
  } finally {
    await Promise.all([submitter.disconnect(), executor.disconnect()]);
    await Promise.all(replicas.map((r) => killAndWait(r.child, "SIGTERM")));
  }
}

async function oneWake(
  submitter: Colonies,
  executor: Colonies,
  owner: Identity,
  worker: Identity,
): Promise<number> {
  let assignedAt = 0;
  const assigned = executor.assign("wake", LONG_POLL_S, worker.privateKey).then((p) => {
    assignedAt = performance.now();
    return p;
  });
  await sleep(500); // the executor is waiting on its replica by now: what is measured is the wake-up
  const submitted = await submitter.submitFuncSpec(
    funcSpec({ funcname: "f", colonyname: "wake", executortype: "t" }),
    owner.privateKey,
  );
  const repliedAt = performance.now();
  const process = await assigned;
  expect(process?.processid).toBe(submitted.processid);
  await executor.close(submitted.processid, [], worker.privateKey);
  return Math.max(0, assignedAt - repliedAt);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

describe.skipIf(!hasPostgres)("two service replicas on one PostgreSQL database", () => {
  let db = { url: "", drop: async () => {} };
  beforeAll(async () => {
    db = await isolatedSchema("cross_replica_wake");
  });
  afterAll(() => db.drop());

  it(`a submit on one wakes an executor long-polling the other within ${WAKE_MS} ms (LISTEN/NOTIFY)`, async () => {
    const times = await wakeTimes(db.url);
    console.log(
      `[cross-replica wake, postgres] ms from submit reply to assign reply: ${times.map(Math.round)}`,
    );
    expect(median(times)).toBeLessThan(WAKE_MS);
    for (const ms of times) expect(ms).toBeLessThan((LONG_POLL_S * 1000) / 4); // woken, not timed out
  }, 60_000);
});

describe("two service processes on one SQLite file", () => {
  it("a submit on one wakes an executor long-polling the other within the change poll", async () => {
    const times = await wakeTimes(serviceDb());
    console.log(
      `[cross-replica wake, sqlite] ms from submit reply to assign reply: ${times.map(Math.round)}`,
    );
    for (const ms of times) expect(ms).toBeLessThan(SQLITE_CHANGE_POLL_MS + 1_500);
  }, 60_000);
});
