import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import type { Identity } from "../../src/index.js";
import { APIError, Colonies, ProcessStates, funcSpec, newIdentity } from "../../src/index.js";
import { requestEnvelope } from "../../src/queue/envelope.js";
import { MAX_PUBSUB_CONNECTIONS_PER_ADDRESS } from "../../src/queue/colonies-routes.js";
import { afs } from "../helpers/afs.js";
import type { TestColony } from "./queue-fixture.js";
import { QueueService, isErrorEnvelope, queueTargets } from "./queue-fixture.js";

/**
 * The process queue's boundary, tested as the attacks that worked against it (issue 14,
 * item 5), each now refused. Every test talks to a real `afs serve` process.
 */

/** Opens a WebSocket to `/pubsub`: the socket once open, or the HTTP status that refused the upgrade. */
function connect(url: string, headers: Record<string, string> = {}): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace(/^http/, "ws")}/pubsub`, { headers });
    socket.once("open", () => resolve(socket));
    socket.once("unexpected-response", (_request, response) => {
      resolve(response.statusCode ?? 0);
      socket.terminate();
    });
    socket.once("error", reject);
  });
}

function closed(socket: WebSocket): Promise<number> {
  if (socket.readyState === socket.CLOSED) return Promise.resolve(-1);
  return new Promise((resolve) => socket.once("close", (code) => resolve(code)));
}

/** The next frame the server pushes, decoded. */
function nextFrame(socket: WebSocket): Promise<{ error?: boolean; payload: unknown }> {
  return new Promise((resolve) =>
    socket.once("message", (data) => {
      const frame = JSON.parse(String(data)) as { error?: boolean; payload: string };
      resolve({ error: frame.error, payload: JSON.parse(Buffer.from(frame.payload, "base64").toString()) });
    }),
  );
}

async function status(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
    return 200;
  } catch (err) {
    if (err instanceof APIError) return err.status;
    throw err;
  }
}

describe.each(queueTargets)("the process queue holds against attacks ($name)", (target) => {
  let q: QueueService;
  let alpha: TestColony;
  let beta: TestColony;

  beforeAll(async () => {
    q = await QueueService.start(target);
    alpha = await q.colony("alpha");
    beta = await q.colony("beta");
  });

  afterAll(async () => {
    await q?.[Symbol.asyncDispose]();
  });

  it("a member of another colony reads and touches nothing of a colony by id: logs, processes, graphs, attributes, channels, functions, users, executors", async () => {
    const worker = await alpha.executor("alpha-worker", "secret");
    const intruder = await beta.executor("beta-worker", "secret");
    const c = q.colonies;
    const submitted = await c.submitFuncSpec(
      funcSpec({ funcname: "f", colonyname: alpha.name, executortype: "secret", channels: ["talk"] }),
      alpha.owner.privateKey,
    );
    const processid = submitted.processid;
    expect((await c.assign(alpha.name, 5, worker.privateKey))?.processid).toBe(processid);
    await c.addLog(processid, "secret-log", worker.privateKey);
    const attribute = await c.addAttribute(processid, "k", "secret-attribute", worker.privateKey);
    await c.channelAppend(processid, "talk", 1, "secret-channel", worker.privateKey);
    const fn = await c.addFunction(
      { colonyname: alpha.name, executorname: "alpha-worker", funcname: "secret-fn" },
      worker.privateKey,
    );
    const user = newIdentity();
    await c.addUser({ colonyname: alpha.name, userid: user.id, name: "alice" }, alpha.owner.privateKey);
    const graph = await c.submitWorkflow(
      alpha.name,
      [funcSpec({ funcname: "g", colonyname: alpha.name, executortype: "idle" })],
      alpha.owner.privateKey,
    );

    // the attack that worked: getlogsmsg naming the intruder's own colony and alpha's process id
    const attempts: Array<[string, Record<string, unknown> & { msgtype: string }]> = [
      ["logs, own colony named", { msgtype: "getlogsmsg", colonyname: beta.name, processid, count: 100 }],
      ["logs", { msgtype: "getlogsmsg", colonyname: alpha.name, processid, count: 100 }],
      ["process", { msgtype: "getprocessmsg", processid }],
      ["graph", { msgtype: "getprocessgraphmsg", processgraphid: graph.processgraphid }],
      ["attribute", { msgtype: "getattributemsg", attributeid: attribute.attributeid }],
      ["channel read", { msgtype: "channelreadmsg", processid, name: "talk", afterseq: 0, limit: 0 }],
      ["channel append", { msgtype: "channelappendmsg", processid, name: "talk", sequence: 9, payload: "" }],
      ["add log", { msgtype: "addlogmsg", processid, message: "forged" }],
      ["set output", { msgtype: "setoutputmsg", processid, out: ["forged"] }],
      ["close", { msgtype: "closesuccessfulmsg", processid, out: ["forged"] }],
      ["fail", { msgtype: "closefailedmsg", processid, errors: ["forged"] }],
      ["cancel", { msgtype: "cancelprocessmsg", processid }],
      ["remove", { msgtype: "removeprocessmsg", processid }],
      ["cancel graph", { msgtype: "cancelprocessgraphmsg", processgraphid: graph.processgraphid }],
      ["remove graph", { msgtype: "removeprocessgraphmsg", processgraphid: graph.processgraphid }],
      [
        "add attribute",
        { msgtype: "addattributemsg", attribute: { targetid: processid, key: "k", value: "x" } },
      ],
      [
        "add child",
        {
          msgtype: "addchildmsg",
          processgraphid: graph.processgraphid,
          parentprocessid: graph.processids[0],
          spec: funcSpec({ funcname: "x", colonyname: beta.name, executortype: "secret" }),
        },
      ],
      ["functions", { msgtype: "getfunctionsmsg", colonyname: alpha.name }],
      ["remove function", { msgtype: "removefunctionmsg", functionid: fn.functionid }],
      ["user", { msgtype: "getusermsg", colonyname: alpha.name, name: "alice" }],
      ["users", { msgtype: "getusersmsg", colonyname: alpha.name }],
      ["executors", { msgtype: "getexecutorsmsg", colonyname: alpha.name }],
      [
        "executor by id, own colony named",
        { msgtype: "getexecutorbyidmsg", colonyname: beta.name, executorid: worker.id },
      ],
      ["statistics", { msgtype: "getcolonystatsmsg", colonyname: alpha.name }],
    ];
    for (const [what, message] of attempts) {
      const answer = await q.call(message, intruder.privateKey);
      expect([403, 404], `${what}: ${answer.text}`).toContain(answer.status);
      expect(isErrorEnvelope(answer), what).toBe(true);
      expect(answer.text, what).not.toMatch(/secret-|alice/);
    }
    // a subscription to alpha's process over /pubsub is refused the same way
    const socket = (await connect(q.url)) as WebSocket;
    const frame = nextFrame(socket);
    socket.send(
      JSON.stringify(
        requestEnvelope(
          {
            msgtype: "subscribeprocessmsg",
            processid,
            executortype: "",
            state: ProcessStates.RUNNING,
            timeout: 5,
          },
          intruder.privateKey,
        ),
      ),
    );
    expect(await frame).toMatchObject({ error: true, payload: { status: 403 } });
    socket.close();

    // and nothing changed: alpha still reads its own, untouched
    expect(await c.getProcess(processid, alpha.owner.privateKey)).toMatchObject({
      state: ProcessStates.RUNNING,
      assignedexecutorid: worker.id,
      out: [],
    });
    expect(
      (await c.getLogs(alpha.name, processid, 10, alpha.owner.privateKey)).map((l) => l.message),
    ).toEqual(["secret-log"]);
    expect((await c.getProcessGraph(graph.processgraphid, alpha.owner.privateKey)).state).toBe(
      ProcessStates.WAITING,
    );
    expect((await c.getFunctions(alpha.name, alpha.owner.privateKey)).map((f) => f.funcname)).toEqual([
      "secret-fn",
    ]);
    await c.close(processid, [], worker.privateKey);
  });

  it("an executor removed from its colony no longer acts on the process it was running", async () => {
    const worker = await alpha.executor("leaver", "leaving");
    const p = await q.colonies.submitFuncSpec(
      funcSpec({ funcname: "f", colonyname: alpha.name, executortype: "leaving" }),
      alpha.owner.privateKey,
    );
    expect((await q.colonies.assign(alpha.name, 5, worker.privateKey))?.processid).toBe(p.processid);
    await q.colonies.removeExecutor(alpha.name, "leaver", alpha.owner.privateKey);
    expect(await status(q.colonies.addLog(p.processid, "after removal", worker.privateKey))).toBe(403);
    expect(await status(q.colonies.close(p.processid, ["forged"], worker.privateKey))).toBe(403);
    await q.colonies.cancelProcess(p.processid, alpha.owner.privateKey);
  });

  it("an assign whose client went away mid-wait gives the process to the next executor, not to nobody", async () => {
    const first = await alpha.executor("taker-1", "handover");
    const second = await alpha.executor("taker-2", "handover");
    const left = new AbortController();
    const waiting = q.colonies
      .assign(alpha.name, 30, first.privateKey, { signal: left.signal })
      .catch((e) => e);
    await sleep(500); // in the long poll
    left.abort();
    expect(await waiting).toBeInstanceOf(Error);
    await sleep(100);
    const submitted = await q.colonies.submitFuncSpec(
      funcSpec({ funcname: "f", colonyname: alpha.name, executortype: "handover", maxexectime: -1 }),
      alpha.owner.privateKey,
    );
    const got = await q.colonies.assign(alpha.name, 5, second.privateKey);
    expect(got).toMatchObject({ processid: submitted.processid, assignedexecutorid: second.id, retries: 0 });
    const running = await q.colonies.getProcesses(
      alpha.name,
      ProcessStates.RUNNING,
      100,
      alpha.owner.privateKey,
    );
    expect(
      running.filter((p) => p.spec.conditions.executortype === "handover").map((p) => p.assignedexecutorid),
    ).toEqual([second.id]);
    await q.colonies.close(submitted.processid, [], second.privateKey);
  });

  it("huge, negative and fractional numbers are refused with 400 at submit, and the colony's assigns keep working", async () => {
    const worker = await alpha.executor("numbers", "numbers");
    const spec = funcSpec({ funcname: "f", colonyname: alpha.name, executortype: "numbers" });
    const bad: Array<[string, unknown]> = [
      ["maxexectime", 1e15],
      ["maxexectime", -5],
      ["maxexectime", 1.5],
      ["maxexectime", "10"],
      ["maxwaittime", 1e15],
      ["maxwaittime", -2],
      ["maxretries", 1e15],
      ["maxretries", -3],
      ["priority", 1e9],
      ["priority", 0.5],
    ];
    for (const [field, value] of bad) {
      const answer = await q.call(
        { msgtype: "submitfuncspecmsg", spec: { ...spec, [field]: value } },
        alpha.owner.privateKey,
      );
      expect(answer.status, `${field}: ${String(value)} ${answer.text}`).toBe(400);
      expect(isErrorEnvelope(answer)).toBe(true);
    }
    const listBad: Array<Record<string, unknown> & { msgtype: string }> = [
      { msgtype: "assignprocessmsg", colonyname: alpha.name, timeout: 1e15 },
      { msgtype: "assignprocessmsg", colonyname: alpha.name, timeout: 0.5 },
      { msgtype: "getprocessesmsg", colonyname: alpha.name, state: 0, count: -1 },
      { msgtype: "getprocessesmsg", colonyname: alpha.name, state: 0, count: 1e15 },
      { msgtype: "getprocessesmsg", colonyname: alpha.name, state: 7, count: 10 },
      { msgtype: "getprocessgraphsmsg", colonyname: alpha.name, state: 0, count: -1 },
      { msgtype: "getlogsmsg", colonyname: alpha.name, processid: "x", count: -1 },
      { msgtype: "channelreadmsg", processid: "x", name: "c", afterseq: -1, limit: 0 },
      { msgtype: "channelappendmsg", processid: "x", name: "c", sequence: 1.5 },
      { msgtype: "channelappendmsg", processid: "x", name: "c", sequence: 1e300 },
    ];
    for (const message of listBad) {
      const answer = await q.call(message, worker.privateKey);
      expect(answer.status, `${JSON.stringify(message)}: ${answer.text}`).toBe(400);
    }
    // nothing was stored, and the queue is not stuck: the largest accepted deadlines still assign
    const waiting = await q.colonies.getProcesses(
      alpha.name,
      ProcessStates.WAITING,
      100,
      alpha.owner.privateKey,
    );
    expect(waiting.filter((p) => p.spec.conditions.executortype === "numbers")).toEqual([]);
    const largest = await q.colonies.submitFuncSpec(
      {
        ...spec,
        maxexectime: 2_147_483_647,
        maxwaittime: 2_147_483_647,
        maxretries: 2_147_483_647,
        priority: 50_000,
      },
      alpha.owner.privateKey,
    );
    const normal = await q.colonies.submitFuncSpec(spec, alpha.owner.privateKey);
    for (const expected of [largest, normal]) {
      const got = await q.colonies.assign(alpha.name, 5, worker.privateKey);
      expect(got?.processid).toBe(expected.processid);
      await q.colonies.close(expected.processid, [], worker.privateKey);
    }
  });

  it("ids that exist in another colony are refused: a function or a user is never overwritten", async () => {
    const owner = await alpha.executor("fn-owner", "fns");
    const sibling = await alpha.executor("fn-sibling", "fns");
    const intruder = await beta.executor("fn-intruder", "fns");
    const fn = await q.colonies.addFunction(
      { colonyname: alpha.name, executorname: "fn-owner", funcname: "train", description: "alpha's" },
      owner.privateKey,
    );
    // the attack: addfunctionmsg with alpha's function id, from beta (or a sibling executor)
    for (const [who, colonyname, executorname] of [
      [intruder, beta.name, "fn-intruder"],
      [sibling, alpha.name, "fn-sibling"],
    ] as Array<[Identity, string, string]>) {
      const answer = await q.call(
        {
          msgtype: "addfunctionmsg",
          fun: {
            functionid: fn.functionid,
            colonyname,
            executorname,
            funcname: "train",
            description: "forged",
          },
        },
        who.privateKey,
      );
      expect(answer.status, answer.text).toBe(400);
    }
    const functions = await q.colonies.getFunctions(alpha.name, alpha.owner.privateKey);
    expect(functions.filter((f) => f.functionid === fn.functionid)).toMatchObject([
      { colonyname: alpha.name, executorname: "fn-owner", description: "alpha's" },
    ]);
    expect(await q.colonies.getFunctions(beta.name, beta.owner.privateKey)).toEqual([]);
    // its own executor may register it again
    await q.colonies.addFunction(
      {
        colonyname: alpha.name,
        executorname: "fn-owner",
        funcname: "train",
        description: "v2",
        functionid: fn.functionid,
      },
      owner.privateKey,
    );

    const user = newIdentity();
    await q.colonies.addUser(
      { colonyname: alpha.name, userid: user.id, name: "carol" },
      alpha.owner.privateKey,
    );
    const answer = await q.call(
      {
        msgtype: "addusermsg",
        user: { colonyname: beta.name, userid: user.id, name: "mallory", email: "", phone: "" },
      },
      beta.owner.privateKey,
    );
    expect(answer.status, answer.text).toBe(400);
    expect((await q.colonies.getUsers(alpha.name, alpha.owner.privateKey)).map((u) => u.name)).toContain(
      "carol",
    );
    expect(await q.colonies.getUsers(beta.name, beta.owner.privateKey)).toEqual([]);
  });
});

describe("the queue's transport bounds (/pubsub frames and connections, /api bodies)", () => {
  let q: QueueService;
  const target = queueTargets[0]!;

  beforeAll(async () => {
    q = await QueueService.start(target);
  });

  afterAll(async () => {
    await q?.[Symbol.asyncDispose]();
  });

  it("a 1 MB /pubsub frame closes its socket with 1009 before it is read; memory and /health are unaffected", async () => {
    await q.healthMs();
    const before = q.rssBytes();
    const sockets = (await Promise.all(Array.from({ length: 4 }, () => connect(q.url)))) as WebSocket[];
    const codes = sockets.map(closed);
    for (const socket of sockets) socket.send(Buffer.alloc(1024 * 1024, 0x61));
    expect(await Promise.all(codes)).toEqual([1009, 1009, 1009, 1009]);
    expect(await q.healthMs()).toBeLessThan(1000);
    expect(q.rssBytes() - before).toBeLessThan(32 * 1024 * 1024);
    // a frame within the bound is read and answered
    const socket = (await connect(q.url)) as WebSocket;
    const frame = nextFrame(socket);
    socket.send(JSON.stringify({ payloadtype: "subscribeprocessmsg", payload: "e30=", signature: "00" }));
    expect(await frame).toMatchObject({ error: true, payload: { status: 403 } });
    socket.close();
  });

  it("an address holds at most 64 /pubsub connections (429), and one connection at most 16 subscriptions", async () => {
    const sockets: WebSocket[] = [];
    try {
      for (let i = 0; i < MAX_PUBSUB_CONNECTIONS_PER_ADDRESS; i++) {
        const socket = await connect(q.url);
        expect(socket).toBeInstanceOf(WebSocket);
        sockets.push(socket as WebSocket);
      }
      expect(await connect(q.url)).toBe(429);
    } finally {
      await Promise.all(
        sockets.map((s) => {
          const done = closed(s);
          s.close();
          return done;
        }),
      );
    }
    await sleep(200); // the server sees the closes
    const colony = await q.colony("subs");
    const process = await q.colonies.submitFuncSpec(
      funcSpec({ funcname: "f", colonyname: "subs", executortype: "t" }),
      colony.owner.privateKey,
    );
    const socket = (await connect(q.url)) as WebSocket;
    const frames: Array<{ error?: boolean; payload: string }> = [];
    socket.on("message", (data) => frames.push(JSON.parse(String(data)) as (typeof frames)[number]));
    const subscribe = requestEnvelope(
      {
        msgtype: "subscribeprocessmsg",
        processid: process.processid,
        executortype: "t",
        state: 2,
        timeout: 60,
      },
      colony.owner.privateKey,
    );
    for (let i = 0; i < 17; i++) socket.send(JSON.stringify(subscribe));
    await sleep(500);
    const refused = frames
      .filter((f) => f.error)
      .map((f) => JSON.parse(Buffer.from(f.payload, "base64").toString()) as { status: number });
    expect(refused).toEqual([expect.objectContaining({ status: 429 })]);
    socket.close();
  });

  it("a POST /api body over 4 MiB (announced or streamed) is refused with 413 in the error envelope; the service keeps serving", async () => {
    for (const how of ["announced", "streamed"] as const) {
      const answer = await q.postOversized(5 * 1024 * 1024, how);
      expect(answer.status, how).toBe(413);
      expect(isErrorEnvelope(answer), how).toBe(true);
    }
    expect(await q.colonies.version()).toMatchObject({ buildversion: "affinetes" });
  });
});

describe("replay: a captured envelope, and the bearer key that keeps it out (afs serve --queue-key)", () => {
  const key = "queue-key-0123456789";
  let open: QueueService;
  let keyed: QueueService;

  beforeAll(async () => {
    const target = queueTargets[0]!;
    open = await QueueService.start(target);
    keyed = await QueueService.start(target, ["--queue-key", key], { bearer: key });
  });

  afterAll(async () => {
    await open?.[Symbol.asyncDispose]();
    await keyed?.[Symbol.asyncDispose]();
  });

  it("without a key, a captured submit envelope replays (the protocol's exposure, documented)", async () => {
    const colony = await open.colony("replayed");
    const envelope = JSON.stringify(
      requestEnvelope(
        {
          msgtype: "submitfuncspecmsg",
          spec: funcSpec({ funcname: "f", colonyname: "replayed", executortype: "t" }),
        },
        colony.owner.privateKey,
      ),
    );
    expect((await open.post(envelope)).status).toBe(200);
    expect((await open.post(envelope)).status).toBe(200); // the same bytes, again: accepted
    expect(await open.colonies.getProcesses("replayed", 0, 100, colony.owner.privateKey)).toHaveLength(2);
  });

  it("with --queue-key, /api and /pubsub refuse whoever lacks the key (401), a replayed envelope included", async () => {
    const colony = await keyed.colony("guarded"); // through the SDK, with the key
    const envelope = JSON.stringify(
      requestEnvelope(
        {
          msgtype: "submitfuncspecmsg",
          spec: funcSpec({ funcname: "f", colonyname: "guarded", executortype: "t" }),
        },
        colony.owner.privateKey,
      ),
    );
    const wrong: Array<Record<string, string>> = [
      {},
      { authorization: "Bearer wrong" },
      { authorization: key },
    ];
    for (const headers of wrong) {
      const answer = await keyed.post(envelope, headers);
      expect(answer.status).toBe(401);
      expect(isErrorEnvelope(answer)).toBe(true);
    }
    expect(await connect(keyed.url)).toBe(401);
    const keyless = new Colonies(keyed.url);
    expect(await status(keyless.version())).toBe(401);
    await keyless.disconnect();
    // the key holder: calls and subscriptions work
    expect((await keyed.post(envelope, { authorization: `Bearer ${key}` })).status).toBe(200);
    const socket = await connect(keyed.url, { authorization: `Bearer ${key}` });
    expect(socket).toBeInstanceOf(WebSocket);
    (socket as WebSocket).close();
    const worker = await colony.executor("w", "t");
    const process = (await keyed.colonies.assign("guarded", 5, worker.privateKey))!;
    const done = keyed.colonies.wait(process.processid, 10, colony.owner.privateKey);
    await keyed.colonies.close(process.processid, ["ok"], worker.privateKey);
    expect((await done).out).toEqual(["ok"]);
    // the CLI takes the key from --bearer or COLONIES_BEARER
    const cli = [
      "colonies",
      "ps",
      "--server",
      keyed.url,
      "--prvkey",
      colony.owner.privateKey,
      "--colony",
      "guarded",
    ];
    const limit = { timeoutMs: 30_000 };
    expect((await afs(cli, limit)).stderr).toContain("Unauthorized");
    expect((await afs([...cli, "--bearer", key], limit)).code).toBe(0);
    expect((await afs(cli, { ...limit, env: { COLONIES_BEARER: key } })).code).toBe(0);
  });
});
