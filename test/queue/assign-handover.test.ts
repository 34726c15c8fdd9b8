import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ColoniesServer } from "../../src/queue/colonies-server.js";
import type { Process } from "../../src/queue/model.js";
import { RUNNING, WAITING, ZERO_TIME } from "../../src/queue/model.js";
import { funcSpec, newIdentity } from "../../src/queue/client/colonies.js";
import type { QueueStore } from "../../src/queue/queue-store.js";
import { openQueueStore } from "../../src/queue/store/sql-queue-store.js";

/**
 * The assign's hand-over to a caller that leaves: the server against a real (in-memory
 * SQLite) store, with the transport's "caller gone" signal driven by hand, for the
 * moments a test over HTTP cannot time (the process already taken when the caller leaves).
 */
describe("an assigned process whose caller never got it", () => {
  const serverKey = newIdentity();
  const owner = newIdentity();
  const worker = newIdentity();
  let store: QueueStore;
  let server: ColoniesServer;
  const call = (msgtype: string, callerId: string, message: Record<string, unknown>, signal?: AbortSignal) =>
    server.handle({ msgtype, callerId, message: { msgtype, ...message } }, signal ? { signal } : {});

  beforeEach(async () => {
    store = await openQueueStore(":memory:");
    server = new ColoniesServer({ store, serverId: serverKey.id });
    await call("addcolonymsg", serverKey.id, { colony: { colonyid: owner.id, name: "c" } });
    await call("addexecutormsg", owner.id, {
      executor: { executorid: worker.id, executortype: "t", executorname: "w", colonyname: "c" },
    });
    await call("approveexecutormsg", owner.id, { colonyname: "c", executorname: "w" });
  });

  afterEach(async () => {
    await server.close();
    await store.close();
  });

  const submit = async () =>
    (await call("submitfuncspecmsg", owner.id, {
      spec: funcSpec({ funcname: "f", colonyname: "c", executortype: "t" }),
    })) as Process;

  it("goes back to WAITING, unassigned, no retry counted, when the answer does not reach the caller", async () => {
    const submitted = await submit();
    const left = new AbortController();
    const assigned = (await call(
      "assignprocessmsg",
      worker.id,
      { colonyname: "c", timeout: 5 },
      left.signal,
    )) as Process;
    expect(assigned).toMatchObject({ processid: submitted.processid, state: RUNNING });
    left.abort(); // the transport could not deliver the answer
    await expect.poll(async () => (await store.getProcess(submitted.processid))?.state).toBe(WAITING);
    expect(await store.getProcess(submitted.processid)).toMatchObject({
      isassigned: false,
      assignedexecutorid: "",
      retries: 0,
      starttime: ZERO_TIME,
    });
    // the next assign gets it
    expect(await call("assignprocessmsg", worker.id, { colonyname: "c", timeout: -1 })).toMatchObject({
      processid: submitted.processid,
    });
  });

  it("is given back at once when the caller left before it was taken", async () => {
    const left = new AbortController();
    const waiting = call("assignprocessmsg", worker.id, { colonyname: "c", timeout: 10 }, left.signal).catch(
      (err: unknown) => err,
    );
    left.abort();
    await waiting;
    const submitted = await submit();
    expect((await store.getProcess(submitted.processid))?.state).toBe(WAITING);
  });

  it("stays with its executor once delivered, and a late abort after a close changes nothing", async () => {
    const submitted = await submit();
    const left = new AbortController();
    await call("assignprocessmsg", worker.id, { colonyname: "c", timeout: 5 }, left.signal);
    await call("closesuccessfulmsg", worker.id, { processid: submitted.processid, out: [1] });
    left.abort();
    await new Promise((r) => setTimeout(r, 50));
    expect(await store.getProcess(submitted.processid)).toMatchObject({ state: 2, out: [1] });
  });
});
