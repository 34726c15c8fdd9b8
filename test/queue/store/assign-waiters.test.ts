import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { ANNOUNCE_BATCH_MS, AssignWaiters } from "../../../src/queue/assign-waiters.js";
import type { Database, TopicHandler } from "../../../src/store/database.js";

/** A database that only records what is published and lets the test play the other processes. */
function fakeDatabase() {
  const published: unknown[] = [];
  let hear: TopicHandler = () => {};
  const db = {
    publish: (_topic: string, message: string) => void published.push(JSON.parse(message)),
    subscribe: async (_topic: string, handler: TopicHandler) => {
      hear = handler;
      return () => {};
    },
  } as unknown as Database;
  return { db, published, hear: (message: string | undefined) => hear(message) };
}

const wait = (w: AssignWaiters, type: string, timeoutMs = 2_000) =>
  w.wait("c", type, { timeoutMs, seen: w.seen("c", type) });

describe("the queue's waiters across service processes (the logic, on a recording database)", () => {
  it("wakes a waiter of this process without telling the others; tells them, batched, what none here took", async () => {
    const { db, published } = fakeDatabase();
    const waiters = await AssignWaiters.start(db);
    const here = wait(waiters, "t");
    waiters.notify("c", "t", 1);
    expect(await here).toBe(true);
    for (let i = 0; i < 3; i++) waiters.notify("c", "t", 1);
    waiters.notify("c", "u", 1);
    waiters.notify("c", "v", Number.POSITIVE_INFINITY);
    waiters.notify("c", "v", 1);
    await sleep(ANNOUNCE_BATCH_MS * 5);
    expect(published).toEqual([
      ["c", "t", 3],
      ["c", "u", 1],
      ["c", "v", -1],
    ]);
    waiters.close();
  });

  it("an announcement wakes as many waiters as it names; a gap (undefined) or a foreign message wakes them all", async () => {
    const { db, hear } = fakeDatabase();
    const waiters = await AssignWaiters.start(db);
    const first = [wait(waiters, "t"), wait(waiters, "t", 300), wait(waiters, "t", 300)];
    hear(JSON.stringify(["c", "t", 1]));
    expect(await Promise.all(first)).toEqual([true, false, false]);
    const second = [wait(waiters, "t"), wait(waiters, "other")];
    hear(undefined);
    expect(await Promise.all(second)).toEqual([true, true]);
    const seen = waiters.seen("c", "t");
    hear("not json");
    expect(await waiters.wait("c", "t", { timeoutMs: 2_000, seen })).toBe(true); // woken in between: not lost
    waiters.close();
  });

  it("close ends every wait and announces what was pending", async () => {
    const { db, published } = fakeDatabase();
    const waiters = await AssignWaiters.start(db);
    const waiting = wait(waiters, "t", 60_000);
    waiters.notify("c", "x", 2);
    waiters.close();
    expect(await waiting).toBe(false);
    expect(published).toEqual([["c", "x", 2]]);
  });
});
