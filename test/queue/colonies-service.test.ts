import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Identity, Process } from "../../src/index.js";
import { APIError, Colonies, ProcessStates, funcSpec, newIdentity } from "../../src/index.js";
import { killAndWait } from "../helpers/client-process.js";
import type { Service } from "../helpers/service.js";
import { serve, serviceDb } from "../helpers/service.js";
import { until } from "../helpers/until.js";

const server = newIdentity();
const colony = newIdentity();
const colonyname = "lab";
const db = serviceDb();
const args = ["--db", db, "--colonies-server-id", server.id];

let service: Service;
let colonies: Colonies;

/** A new approved executor of the colony. */
async function executor(name: string, type = "echo"): Promise<Identity> {
  const identity = newIdentity();
  await colonies.addExecutor(
    { executorid: identity.id, executortype: type, executorname: name, colonyname },
    colony.privateKey,
  );
  await colonies.approveExecutor(colonyname, name, colony.privateKey);
  return identity;
}

/** Runs processes with `work` until `stop` says so; returns the ids it ran. */
async function runExecutor(
  identity: Identity,
  work: (p: Process) => Promise<unknown[]> | unknown[],
  stop: () => boolean,
): Promise<string[]> {
  const ran: string[] = [];
  while (!stop()) {
    const process = await colonies.assign(colonyname, 1, identity.privateKey);
    if (!process) continue;
    ran.push(process.processid);
    await colonies.close(process.processid, await work(process), identity.privateKey);
  }
  return ran;
}

beforeAll(async () => {
  service = await serve(...args);
  colonies = new Colonies(service.url);
  await colonies.addColony({ colonyid: colony.id, name: colonyname }, server.privateKey);
});

afterAll(async () => {
  await colonies?.disconnect();
  if (service) await killAndWait(service.child, "SIGTERM");
});

describe("the process queue (ColonyOS protocol at POST /api)", () => {
  it("the echo executor runs a submitted function", async () => {
    const echo = await executor("echo-1");
    const submitted = await colonies.submitFuncSpec(
      funcSpec({ funcname: "echo", colonyname, executortype: "echo", args: ["hello"] }),
      colony.privateKey,
    );
    expect(submitted.state).toBe(ProcessStates.WAITING);
    const process = await colonies.assign(colonyname, 5, echo.privateKey);
    expect(process?.processid).toBe(submitted.processid);
    expect(process?.state).toBe(ProcessStates.RUNNING);
    await colonies.addLog(submitted.processid, "echoing", echo.privateKey);
    await colonies.close(submitted.processid, process!.spec.args, echo.privateKey);
    const done = await colonies.getProcess(submitted.processid, colony.privateKey);
    expect(done).toMatchObject({ state: ProcessStates.SUCCESS, out: ["hello"], assignedexecutorid: echo.id });
    expect(
      (await colonies.getLogs(colonyname, submitted.processid, 10, colony.privateKey)).map((l) => l.message),
    ).toEqual(["echoing"]);
    expect(await colonies.assign(colonyname, -1, echo.privateKey)).toBeUndefined(); // nothing left: 404 at once
  });

  it("runs the gen_nums → sum_nums workflow: the child gets its parent's output", async () => {
    const worker = await executor("math-1", "math");
    const graph = await colonies.submitWorkflow(
      colonyname,
      [
        funcSpec({ funcname: "gen_nums", colonyname, executortype: "math" }),
        funcSpec({ funcname: "sum_nums", colonyname, executortype: "math", dependencies: ["gen_nums"] }),
      ],
      colony.privateKey,
    );
    let done = false;
    const running = runExecutor(
      worker,
      (p) => (p.spec.funcname === "gen_nums" ? [1, 2] : [(p.in as number[]).reduce((a, b) => a + b, 0)]),
      () => done,
    );
    expect(
      await until(
        async () =>
          (await colonies.getProcessGraph(graph.processgraphid, colony.privateKey)).state ===
          ProcessStates.SUCCESS,
        20_000,
      ),
    ).toBe(true);
    done = true;
    await running;
    const processes = await Promise.all(
      graph.processids.map((id) => colonies.getProcess(id, colony.privateKey)),
    );
    expect(processes.find((p) => p.spec.funcname === "sum_nums")?.out).toEqual([3]);
  });

  it("map/reduce: a running process adds children, the reducer gets all their outputs", async () => {
    const worker = await executor("mr-1", "mapreduce");
    const graph = await colonies.submitWorkflow(
      colonyname,
      [
        funcSpec({ funcname: "split", colonyname, executortype: "mapreduce" }),
        funcSpec({ funcname: "reduce", colonyname, executortype: "mapreduce", dependencies: ["split"] }),
      ],
      colony.privateKey,
    );
    let done = false;
    const running = runExecutor(
      worker,
      async (p) => {
        if (p.spec.funcname === "split") {
          const members = await Promise.all(
            graph.processids.map((id) => colonies.getProcess(id, worker.privateKey)),
          );
          const reduce = members.find((m) => m.spec.funcname === "reduce")!;
          for (const n of [1, 2, 3]) {
            await colonies.addChild(
              {
                processgraphid: p.processgraphid,
                parentprocessid: p.processid,
                childprocessid: reduce.processid,
                spec: funcSpec({
                  funcname: "square",
                  nodename: `square-${n}`,
                  colonyname,
                  executortype: "mapreduce",
                  args: [n],
                }),
              },
              worker.privateKey,
            );
          }
          return [];
        }
        if (p.spec.funcname === "square") return [(p.spec.args[0] as number) ** 2];
        return [(p.in as number[]).reduce((a, b) => a + b, 0)];
      },
      () => done,
    );
    expect(
      await until(
        async () =>
          (await colonies.getProcessGraph(graph.processgraphid, colony.privateKey)).state ===
          ProcessStates.SUCCESS,
        20_000,
      ),
    ).toBe(true);
    done = true;
    await running;
    const final = await colonies.getProcessGraph(graph.processgraphid, colony.privateKey);
    expect(final.processids).toHaveLength(5);
    const reduce = (
      await Promise.all(final.processids.map((id) => colonies.getProcess(id, colony.privateKey)))
    ).find((p) => p.spec.funcname === "reduce");
    expect(reduce?.out).toEqual([14]);
  });

  it("1,000 processes raced by 4 executors: each assigned exactly once", async () => {
    const racers = await Promise.all([1, 2, 3, 4].map((i) => executor(`racer-${i}`, "race")));
    const submitted = new Set<string>();
    for (let batch = 0; batch < 10; batch++) {
      const processes = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          colonies.submitFuncSpec(
            funcSpec({ funcname: "race", colonyname, executortype: "race", args: [batch * 100 + i] }),
            colony.privateKey,
          ),
        ),
      );
      for (const p of processes) submitted.add(p.processid);
    }
    // each racer takes processes until the queue is empty (a single attempt answers 404 then)
    const ran = await Promise.all(
      racers.map(async (racer) => {
        const mine: string[] = [];
        for (;;) {
          const process = await colonies.assign(colonyname, -1, racer.privateKey);
          if (!process) return mine;
          mine.push(process.processid);
          await colonies.close(process.processid, process.spec.args, racer.privateKey);
        }
      }),
    );
    const all = ran.flat();
    expect(all).toHaveLength(1000);
    expect(new Set(all)).toEqual(submitted);
    expect(ran.every((mine) => mine.length > 0)).toBe(true); // all four took part
    const stats = await colonies.getColonyStatistics(colonyname, colony.privateKey);
    expect(stats.waitingprocesses).toBe(0);
  });

  it("a long-poll assign is woken by a submission", async () => {
    const waiter = await executor("waiter-1", "late");
    const assigned = colonies.assign(colonyname, 30, waiter.privateKey);
    await new Promise((r) => setTimeout(r, 200)); // the executor is waiting now
    const submitted = await colonies.submitFuncSpec(
      funcSpec({ funcname: "late", colonyname, executortype: "late" }),
      colony.privateKey,
    );
    expect((await assigned)?.processid).toBe(submitted.processid);
    await colonies.close(submitted.processid, [], waiter.privateKey);
  });

  it("past maxexectime a process is retried up to maxretries, then FAILED; past maxwaittime, FAILED", async () => {
    const slow = await executor("slow-1", "slow");
    const submitted = await colonies.submitFuncSpec(
      funcSpec({ funcname: "hang", colonyname, executortype: "slow", maxexectime: 1, maxretries: 1 }),
      colony.privateKey,
    );
    const first = await colonies.assign(colonyname, 10, slow.privateKey);
    expect(first?.processid).toBe(submitted.processid);
    // never closed: back to WAITING with one retry, assigned again, then failed for good
    const second = await colonies.assign(colonyname, 10, slow.privateKey);
    expect(second?.processid).toBe(submitted.processid);
    expect(second?.retries).toBe(1);
    expect(
      await until(
        async () =>
          (await colonies.getProcess(submitted.processid, colony.privateKey)).state === ProcessStates.FAILED,
        10_000,
      ),
    ).toBe(true);
    expect((await colonies.getProcess(submitted.processid, colony.privateKey)).errors).toEqual([
      "Maximum execution time limit exceeded",
    ]);
    await expect(colonies.close(submitted.processid, [], slow.privateKey)).rejects.toBeInstanceOf(APIError);

    const orphan = await colonies.submitFuncSpec(
      funcSpec({ funcname: "nobody", colonyname, executortype: "nobody-runs-this", maxwaittime: 1 }),
      colony.privateKey,
    );
    expect(
      await until(
        async () =>
          (await colonies.getProcess(orphan.processid, colony.privateKey)).state === ProcessStates.FAILED,
        10_000,
      ),
    ).toBe(true);
    expect((await colonies.getProcess(orphan.processid, colony.privateKey)).errors).toEqual([
      "Maximum waiting time limit exceeded",
    ]);
  });

  it("refuses bad workflows, strangers and forged signatures", async () => {
    const bad = (functionspecs: ReturnType<typeof funcSpec>[]) =>
      colonies.submitWorkflow(colonyname, functionspecs, colony.privateKey);
    const spec = (name: string, deps: string[] = []) =>
      funcSpec({ funcname: name, colonyname, executortype: "math", dependencies: deps });
    await expect(bad([spec("a", ["missing"])])).rejects.toMatchObject({
      status: 400,
      message: /not in the workflow/,
    });
    await expect(bad([spec("a"), spec("a")])).rejects.toMatchObject({
      status: 400,
      message: /Duplicate nodename/,
    });
    await expect(bad([spec("a", ["b"]), spec("b", ["a"])])).rejects.toMatchObject({
      status: 400,
      message: /cycle/,
    });
    const stranger = newIdentity();
    await expect(
      colonies.submitFuncSpec(
        funcSpec({ funcname: "x", colonyname, executortype: "echo" }),
        stranger.privateKey,
      ),
    ).rejects.toMatchObject({ status: 403 });
    await expect(
      colonies.addColony({ colonyid: stranger.id, name: "other" }, stranger.privateKey),
    ).rejects.toMatchObject({
      status: 403,
    });
    const forged = await request(`${service.url}/api`, {
      method: "POST",
      body: JSON.stringify({
        payloadtype: "getcoloniesmsg",
        payload: "eyJtc2d0eXBlIjoiZ2V0Y29sb25pZXNtc2cifQ==",
        signature: "00",
      }),
    });
    expect(forged.statusCode).toBe(403);
    expect(await forged.body.json()).toMatchObject({ payloadtype: "error", error: true });
  });

  it("users submit and read processes; executors set attributes and register functions", async () => {
    const alice = newIdentity();
    await colonies.addUser({ colonyname, userid: alice.id, name: "alice" }, colony.privateKey);
    await expect(
      colonies.addUser({ colonyname, userid: newIdentity().id, name: "alice" }, colony.privateKey),
    ).rejects.toMatchObject({ status: 400 });
    expect((await colonies.getUsers(colonyname, alice.privateKey)).map((u) => u.name)).toEqual(["alice"]);
    const worker = await executor("attr-1", "attr");
    const submitted = await colonies.submitFuncSpec(
      funcSpec({ funcname: "measure", colonyname, executortype: "attr" }),
      alice.privateKey,
    );
    expect(submitted.initiatorname).toBe("alice");
    const running = await colonies.assign(colonyname, 5, worker.privateKey);
    const attribute = await colonies.addAttribute(running!.processid, "accuracy", "0.93", worker.privateKey);
    expect(attribute).toMatchObject({
      targetid: running!.processid,
      key: "accuracy",
      value: "0.93",
      targetcolonyname: colonyname,
    });
    expect(await colonies.getAttribute(attribute.attributeid, alice.privateKey)).toEqual(attribute);
    expect((await colonies.getProcess(running!.processid, alice.privateKey)).attributes).toEqual([attribute]);
    await colonies.close(running!.processid, [], worker.privateKey);
    await expect(
      colonies.addAttribute(running!.processid, "late", "x", worker.privateKey),
    ).rejects.toMatchObject({
      status: 400,
    });

    const fn = await colonies.addFunction(
      { colonyname, executorname: "attr-1", funcname: "measure" },
      worker.privateKey,
    );
    await expect(
      colonies.addFunction({ colonyname, executorname: "someone-else", funcname: "x" }, worker.privateKey),
    ).rejects.toMatchObject({ status: 403 });
    expect(
      (await colonies.getFunctions(colonyname, alice.privateKey, "attr-1")).map((f) => f.funcname),
    ).toEqual(["measure"]);
    await colonies.removeFunction(fn.functionid, worker.privateKey);
    expect(await colonies.getFunctions(colonyname, alice.privateKey, "attr-1")).toEqual([]);
    expect((await colonies.getExecutorById(colonyname, worker.id, alice.privateKey)).executorname).toBe(
      "attr-1",
    );
    await colonies.removeUser(colonyname, "alice", colony.privateKey);
    await expect(colonies.getProcess(running!.processid, alice.privateKey)).rejects.toMatchObject({
      status: 403,
    });
  });

  it("a client waits for a process over the /pubsub WebSocket, as pycolonies' wait does", async () => {
    const worker = await executor("pubsub-1", "pubsub");
    const submitted = await colonies.submitFuncSpec(
      funcSpec({ funcname: "slow", colonyname, executortype: "pubsub" }),
      colony.privateKey,
    );
    let resolved = false;
    const waiting = colonies.wait(submitted.processid, 20, colony.privateKey).then((p) => {
      resolved = true;
      return p;
    });
    const running = await colonies.assign(colonyname, 5, worker.privateKey);
    await new Promise((r) => setTimeout(r, 200));
    expect(resolved).toBe(false); // RUNNING is not what it waits for
    await colonies.close(running!.processid, ["done"], worker.privateKey);
    expect(await waiting).toMatchObject({
      processid: submitted.processid,
      state: ProcessStates.SUCCESS,
      out: ["done"],
    });
    // already there: answered at once; another state with a short timeout: TimeoutError
    expect((await colonies.wait(submitted.processid, 5, colony.privateKey)).state).toBe(
      ProcessStates.SUCCESS,
    );
    await expect(
      colonies.wait(submitted.processid, 1, colony.privateKey, ProcessStates.FAILED),
    ).rejects.toMatchObject({
      code: "TIMEOUT",
    });
    await expect(colonies.wait(submitted.processid, 5, newIdentity().privateKey)).rejects.toMatchObject({
      status: 403,
    });
  });

  it("cancels a waiting process, a running one (its executor's close is refused) and a workflow", async () => {
    const worker = await executor("cancel-1", "cancel");
    const submit = (funcname: string) =>
      colonies.submitFuncSpec(funcSpec({ funcname, colonyname, executortype: "cancel" }), colony.privateKey);
    const running = await submit("running");
    const taken = await colonies.assign(colonyname, 5, worker.privateKey);
    expect(taken?.processid).toBe(running.processid);
    const waiting = await submit("waiting");
    await colonies.cancelProcess(waiting.processid, colony.privateKey);
    await colonies.cancelProcess(running.processid, colony.privateKey);
    for (const p of [waiting, running]) {
      expect((await colonies.getProcess(p.processid, colony.privateKey)).state).toBe(ProcessStates.CANCELLED);
    }
    await expect(colonies.close(running.processid, ["late"], worker.privateKey)).rejects.toMatchObject({
      status: 400,
    });
    await expect(colonies.cancelProcess(waiting.processid, colony.privateKey)).rejects.toMatchObject({
      status: 400,
    });
    expect(await colonies.assign(colonyname, -1, worker.privateKey)).toBeUndefined(); // never assigned again
    const graph = await colonies.submitWorkflow(
      colonyname,
      [
        funcSpec({ funcname: "first", colonyname, executortype: "cancel" }),
        funcSpec({ funcname: "second", colonyname, executortype: "cancel", dependencies: ["first"] }),
      ],
      colony.privateKey,
    );
    const first = await colonies.assign(colonyname, 5, worker.privateKey);
    await colonies.cancelProcessGraph(graph.processgraphid, colony.privateKey);
    expect((await colonies.getProcessGraph(graph.processgraphid, colony.privateKey)).state).toBe(
      ProcessStates.CANCELLED,
    );
    const states = await Promise.all(
      graph.processids.map(async (id) => (await colonies.getProcess(id, colony.privateKey)).state),
    );
    expect(states).toEqual([ProcessStates.CANCELLED, ProcessStates.CANCELLED]);
    await expect(colonies.close(first!.processid, [], worker.privateKey)).rejects.toMatchObject({
      status: 400,
    });
    const stats = await colonies.getColonyStatistics(colonyname, colony.privateKey);
    expect(stats.cancelledprocesses).toBeGreaterThanOrEqual(4);
    expect(stats.cancelledworkflows).toBeGreaterThanOrEqual(1);
    // removal: a cancelled workflow by id; all cancelled processes by the colony owner only
    await colonies.removeProcessGraph(graph.processgraphid, colony.privateKey);
    await expect(colonies.getProcessGraph(graph.processgraphid, colony.privateKey)).rejects.toMatchObject({
      status: 404, // ColonyOS answers 500 here; a missing object is a 404 with us (protocol notes §10)
    });
    await expect(
      colonies.removeAllProcesses(colonyname, worker.privateKey, ProcessStates.CANCELLED),
    ).rejects.toMatchObject({ status: 403 });
    await colonies.removeAllProcesses(colonyname, colony.privateKey, ProcessStates.CANCELLED);
    expect(await colonies.getProcesses(colonyname, ProcessStates.CANCELLED, 100, colony.privateKey)).toEqual(
      [],
    );
    await expect(
      colonies.removeAllProcesses(colonyname, colony.privateKey, ProcessStates.RUNNING),
    ).rejects.toMatchObject({ status: 400 });
  });

  it("channels: the submitter and the executor exchange messages, read and subscribed to over /pubsub", async () => {
    const worker = await executor("chan-1", "chan");
    const submitted = await colonies.submitFuncSpec(
      funcSpec({ funcname: "chat", colonyname, executortype: "chan", channels: ["chat"] }),
      colony.privateKey,
    );
    const received: string[] = [];
    const subscribed = (async () => {
      for await (const m of colonies.subscribeChannel(
        submitted.processid,
        "chat",
        0,
        10,
        colony.privateKey,
      )) {
        received.push(m.text);
        if (received.length === 3) break;
      }
    })();
    await colonies.channelAppend(submitted.processid, "chat", 1, "question", colony.privateKey);
    const process = await colonies.assign(colonyname, 5, worker.privateKey);
    expect(process?.spec.channels).toEqual(["chat"]);
    const seen = await colonies.channelRead(submitted.processid, "chat", 0, 0, worker.privateKey);
    expect(seen.map((m) => [m.text, m.senderid, m.sequence])).toEqual([["question", colony.id, 1]]);
    await colonies.channelAppend(submitted.processid, "chat", 1, "answer", worker.privateKey, 1);
    await colonies.channelAppend(submitted.processid, "chat", 1, "answer", worker.privateKey, 1); // a retry: kept once
    await colonies.channelAppend(submitted.processid, "chat", 2, new Uint8Array([0, 255]), worker.privateKey);
    await subscribed;
    expect(received).toEqual(["question", "answer", Buffer.from([0, 255]).toString("utf8")]);
    const all = await colonies.channelRead(submitted.processid, "chat", 1, 0, colony.privateKey);
    expect(all.map((m) => [...m.payload])).toEqual([[...Buffer.from("answer")], [0, 255]]);
    expect(all[0]).toMatchObject({ senderid: worker.id, inreplyto: 1 });
    // a channel the spec does not declare; a stranger of the colony; a subscription that times out
    await expect(
      colonies.channelRead(submitted.processid, "nope", 0, 0, colony.privateKey),
    ).rejects.toMatchObject({ status: 404 });
    const other = await executor("chan-2", "chan");
    await expect(
      colonies.channelAppend(submitted.processid, "chat", 1, "hi", other.privateKey),
    ).rejects.toMatchObject({ status: 403 });
    const late: string[] = [];
    for await (const m of colonies.subscribeChannel(submitted.processid, "chat", 3, 1, colony.privateKey))
      late.push(m.text);
    expect(late).toEqual([]);
    await colonies.close(process!.processid, [], worker.privateKey);
  });

  it("killed mid-workflow and restarted, the service completes the workflow", async () => {
    const worker = await executor("durable-1", "durable");
    const graph = await colonies.submitWorkflow(
      colonyname,
      [
        funcSpec({ funcname: "gen_nums", colonyname, executortype: "durable" }),
        funcSpec({ funcname: "sum_nums", colonyname, executortype: "durable", dependencies: ["gen_nums"] }),
      ],
      colony.privateKey,
    );
    const gen = await colonies.assign(colonyname, 10, worker.privateKey);
    await colonies.close(gen!.processid, [1, 2], worker.privateKey);
    await killAndWait(service.child, "SIGKILL");
    await colonies.disconnect();
    service = await serve(...args);
    colonies = new Colonies(service.url);
    const sum = await colonies.assign(colonyname, 10, worker.privateKey);
    expect(sum?.spec.funcname).toBe("sum_nums");
    expect(sum?.in).toEqual([1, 2]);
    await colonies.close(sum!.processid, [3], worker.privateKey);
    expect((await colonies.getProcessGraph(graph.processgraphid, colony.privateKey)).state).toBe(
      ProcessStates.SUCCESS,
    );
  });
});
