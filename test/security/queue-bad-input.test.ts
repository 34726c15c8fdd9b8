import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import type { Identity } from "../../src/index.js";
import { ProcessStates, funcSpec, newIdentity } from "../../src/index.js";
import { requestEnvelope } from "../../src/queue/envelope.js";
import { MESSAGES } from "../../src/queue/messages.js";
import type { RawAnswer, TestColony } from "./queue-fixture.js";
import { QueueService, isErrorEnvelope, queueTargets } from "./queue-fixture.js";

/**
 * Every message type the queue handles, given bad values field by field (wrong JSON
 * types, NUL bytes, lone surrogates, over-long names, huge, negative and fractional
 * numbers), and bad envelopes (signatures, msgtype/payloadtype, encodings): each gets a
 * 4xx in the protocol's error envelope, never a 500; nothing is half-created; the
 * service keeps serving (issue 14, item 7).
 */

type Msg = Record<string, unknown> & { msgtype: string };

/** Free-text fields: any string is a good value there, so only wrong types are bad. */
const TEXT_FIELDS = new Set([
  "message",
  "email",
  "phone",
  "description",
  "key",
  "value",
  "payloadtype",
  "cpu",
  "mem",
  "storage",
  "availablecpu",
  "availablemem",
  "payload",
]);
/** Objects whose own fields are swept too. */
const NESTED = new Set(["spec", "conditions", "colony", "executor", "user", "fun", "attribute"]);

const HEX = "ab".repeat(32);

/** A well-formed message of each type, signed later by the sweep colony's owner or executor. */
function baseMessages(colonyname: string): Msg[] {
  const spec = funcSpec({ funcname: "f", colonyname, executortype: "sweep", channels: ["c"] });
  return [
    { msgtype: "versionmsg" }, // unsigned, and its fields are ignored (as ColonyOS)
    { msgtype: "addcolonymsg", colony: { colonyid: HEX, name: "another" } },
    { msgtype: "getcoloniesmsg" },
    { msgtype: "getcolonymsg", colonyname },
    { msgtype: "removecolonymsg", colonyname },
    {
      msgtype: "addexecutormsg",
      executor: {
        executorid: HEX,
        executortype: "sweep",
        executorname: "new",
        colonyname,
        requirefuncreg: false,
        location: { long: 1, lat: 2, name: "", desc: "" },
        capabilities: { hardware: [], software: [] },
      },
    },
    { msgtype: "approveexecutormsg", colonyname, executorname: "new" },
    { msgtype: "rejectexecutormsg", colonyname, executorname: "new" },
    { msgtype: "removeexecutormsg", colonyname, executorname: "new" },
    { msgtype: "getexecutorsmsg", colonyname },
    { msgtype: "getexecutormsg", colonyname, executorname: "sweeper" },
    { msgtype: "getexecutorbyidmsg", colonyname, executorid: HEX },
    { msgtype: "submitfuncspecmsg", spec },
    { msgtype: "assignprocessmsg", colonyname, timeout: -1, availablecpu: "", availablemem: "" },
    { msgtype: "getprocessmsg", processid: HEX },
    { msgtype: "getprocessesmsg", colonyname, count: 10, state: 0, executortype: "sweep", label: "" },
    { msgtype: "removeprocessmsg", processid: HEX, all: false },
    { msgtype: "removeallprocessesmsg", colonyname, state: -1 },
    { msgtype: "cancelprocessmsg", processid: HEX },
    { msgtype: "cancelprocessgraphmsg", processgraphid: HEX },
    { msgtype: "closesuccessfulmsg", processid: HEX, out: ["x"] },
    { msgtype: "closefailedmsg", processid: HEX, errors: ["x"] },
    { msgtype: "setoutputmsg", processid: HEX, out: ["x"] },
    { msgtype: "submitworkflowspecmsg", spec: { colonyname, functionspecs: [spec] } },
    { msgtype: "getprocessgraphmsg", processgraphid: HEX },
    { msgtype: "getprocessgraphsmsg", colonyname, count: 10, state: 0 },
    { msgtype: "removeprocessgraphmsg", processgraphid: HEX, all: false },
    { msgtype: "removeallprocessgraphsmsg", colonyname, state: -1 },
    {
      msgtype: "addchildmsg",
      processgraphid: HEX,
      parentprocessid: HEX,
      childprocessid: "",
      insert: false,
      spec,
    },
    { msgtype: "channelappendmsg", processid: HEX, name: "c", sequence: 1, inreplyto: 0, payload: "" },
    { msgtype: "channelreadmsg", processid: HEX, name: "c", afterseq: 0, limit: 10 },
    { msgtype: "addlogmsg", processid: HEX, message: "x" },
    {
      msgtype: "getlogsmsg",
      colonyname,
      processid: HEX,
      executorname: "",
      count: 10,
      since: 0,
      latest: false,
    },
    { msgtype: "getcolonystatsmsg", colonyname },
    { msgtype: "addusermsg", user: { colonyname, userid: HEX, name: "u", email: "", phone: "" } },
    { msgtype: "getusersmsg", colonyname },
    { msgtype: "getusermsg", colonyname, name: "u" },
    { msgtype: "removeusermsg", colonyname, name: "u" },
    { msgtype: "addattributemsg", attribute: { targetid: HEX, key: "k", value: "v", attributetype: 1 } },
    { msgtype: "getattributemsg", attributeid: HEX },
    {
      msgtype: "addfunctionmsg",
      fun: { functionid: "", colonyname, executorname: "sweeper", funcname: "f", description: "", args: [] },
    },
    { msgtype: "getfunctionsmsg", colonyname, executorname: "" },
    { msgtype: "removefunctionmsg", functionid: HEX },
    { msgtype: "subscribeprocessmsg", colonyname, processid: HEX, executortype: "", state: 2, timeout: 5 },
    { msgtype: "subscribeprocessesmsg", colonyname, executortype: "sweep", state: 2, timeout: 5 },
    { msgtype: "subscribechannelmsg", processid: HEX, name: "c", afterseq: 0, timeout: 5 },
  ];
}

/** Values that are bad for a field whose good value is `good`. */
function badValuesFor(field: string, good: unknown): unknown[] {
  if (typeof good === "string") {
    const wrongTypes = [5, true, {}, ["x"]];
    if (TEXT_FIELDS.has(field)) return wrongTypes;
    return [...wrongTypes, "a\u0000b", "\ud800", "n".repeat(300)];
  }
  if (typeof good === "number") return ["1", 1.5, 1e300, -1e15, true, [], {}];
  if (typeof good === "boolean") return [1, "true", {}];
  if (Array.isArray(good)) {
    const bad: unknown[] = ["x", {}, 5];
    if (typeof good[0] === "string") bad.push([5], [{}]);
    return bad;
  }
  if (typeof good === "object" && good !== null) return ["x", [], 5];
  return [];
}

/** One message per bad value of each field (one level into the known nested objects). */
function mutations(base: Msg): Array<{ what: string; message: Msg }> {
  const out: Array<{ what: string; message: Msg }> = [];
  const walk = (
    object: Record<string, unknown>,
    path: string[],
    set: (v: Record<string, unknown>) => Msg,
  ) => {
    for (const [field, good] of Object.entries(object)) {
      if (field === "msgtype") continue;
      for (const bad of badValuesFor(field, good)) {
        out.push({
          what: `${base.msgtype} ${[...path, field].join(".")} = ${JSON.stringify(bad)?.slice(0, 40)}`,
          message: set({ ...object, [field]: bad }),
        });
      }
      if (NESTED.has(field) && typeof good === "object" && good !== null && !Array.isArray(good)) {
        walk(good as Record<string, unknown>, [...path, field], (v) => set({ ...object, [field]: v }));
      }
    }
  };
  walk(base, [], (v) => v as Msg);
  // the workflow's specs, one of them bad
  if (base.msgtype === "submitworkflowspecmsg") {
    const workflow = base.spec as { colonyname: string; functionspecs: Array<Record<string, unknown>> };
    const spec = workflow.functionspecs[0] as Record<string, unknown>;
    for (const [field, good] of Object.entries(spec)) {
      for (const bad of badValuesFor(field, good)) {
        out.push({
          what: `submitworkflowspecmsg spec.functionspecs[0].${field} = ${JSON.stringify(bad)?.slice(0, 40)}`,
          message: { ...base, spec: { ...workflow, functionspecs: [{ ...spec, [field]: bad }] } },
        });
      }
    }
  }
  return out;
}

function expectRefused(answer: RawAnswer, what: string, allowed = [400, 401, 403, 404]): void {
  expect(allowed, `${what}: HTTP ${answer.status} ${answer.text.slice(0, 300)}`).toContain(answer.status);
  expect(isErrorEnvelope(answer), `${what}: not an error envelope: ${answer.text.slice(0, 200)}`).toBe(true);
}

describe.each(queueTargets)("bad input to the process queue ($name)", (target) => {
  let q: QueueService;
  let sweep: TestColony;
  let sweeper: Identity;

  beforeAll(async () => {
    q = await QueueService.start(target);
    sweep = await q.colony("sweep");
    sweeper = await sweep.executor("sweeper", "sweep");
  });

  afterAll(async () => {
    await q?.[Symbol.asyncDispose]();
  });

  it("covers every message type the server handles", () => {
    expect(
      baseMessages("sweep")
        .map((m) => m.msgtype)
        .sort(),
    ).toEqual(Object.keys(MESSAGES).sort());
  });

  it("every message type, field by field: a 4xx in the error envelope, never a 500, nothing created", async () => {
    const before = await q.colonies.getColonyStatistics("sweep", sweep.owner.privateKey);
    let sent = 0;
    for (const base of baseMessages("sweep")) {
      // signed by whoever may send it, so a bad field is the only thing wrong
      const executorOnly = /assign|close|setoutput|addlog|addattribute|addfunction|addchild|channel/.test(
        base.msgtype,
      );
      const server = /colon(y|ies)msg$/.test(base.msgtype) && base.msgtype !== "getcolonymsg";
      const key = server ? q.server.privateKey : executorOnly ? sweeper.privateKey : sweep.owner.privateKey;
      for (const { what, message } of mutations(base)) {
        expectRefused(await q.call(message, key), what);
        sent++;
      }
    }
    expect(sent).toBeGreaterThan(500);
    // nothing was created or changed by any of them
    expect(await q.colonies.getColonyStatistics("sweep", sweep.owner.privateKey)).toEqual(before);
    expect((await q.colonies.getColonies(q.server.privateKey)).map((c) => c.name)).toEqual(["sweep"]);
    expect(
      (await q.colonies.getExecutors("sweep", sweep.owner.privateKey)).map((e) => e.executorname),
    ).toEqual(["sweeper"]);
    expect(await q.colonies.getUsers("sweep", sweep.owner.privateKey)).toEqual([]);
    expect(await q.colonies.getFunctions("sweep", sweep.owner.privateKey)).toEqual([]);
  });

  it("unknown fields are ignored, as ColonyOS' decoder does; null is absent", async () => {
    const answer = await q.call(
      {
        msgtype: "getprocessesmsg",
        colonyname: "sweep",
        count: 5,
        state: 0,
        extra: { deep: [1] },
        label: null,
      },
      sweep.owner.privateKey,
    );
    expect(answer.status, answer.text).toBe(200);
  });

  it("bad envelopes: 400 for what cannot be read, 403 for signatures and unknown types, 413 past 4 MiB", async () => {
    const signed = requestEnvelope({ msgtype: "getcolonymsg", colonyname: "sweep" }, sweep.owner.privateKey);
    const other = requestEnvelope({ msgtype: "getcolonymsg", colonyname: "other" }, sweep.owner.privateKey);
    const payloadOf = (json: string) => Buffer.from(json).toString("base64");
    const stranger = newIdentity();
    const envelopes: Array<[string, string | Buffer, number[]]> = [
      ["empty body", "", [400]],
      ["not JSON", "{nope", [400]],
      ["a JSON list", "[]", [400]],
      ["a JSON string", '"x"', [400]],
      ["null", "null", [400]],
      ["no payload", JSON.stringify({ payloadtype: "getcolonymsg", signature: signed.signature }), [400]],
      ["payload not a string", JSON.stringify({ ...signed, payload: 5 }), [400]],
      ["payloadtype not a string", JSON.stringify({ ...signed, payloadtype: ["x"] }), [400]],
      ["no signature", JSON.stringify({ ...signed, signature: undefined }), [403]],
      ["signature not hex", JSON.stringify({ ...signed, signature: "zz".repeat(65) }), [403]],
      ["signature too short", JSON.stringify({ ...signed, signature: "ab" }), [403]],
      [
        "signature with a NUL",
        JSON.stringify({ ...signed, signature: `${signed.signature.slice(0, 129)}\u0000` }),
        [403],
      ],
      ["signature of another payload", JSON.stringify({ ...signed, signature: other.signature }), [403]],
      [
        "high-s signature",
        JSON.stringify({ ...signed, signature: `${signed.signature.slice(0, 64)}${"ff".repeat(32)}00` }),
        [403],
      ],
      [
        "recovery id 9",
        JSON.stringify({ ...signed, signature: `${signed.signature.slice(0, 128)}09` }),
        [403],
      ],
      ["payloadtype ≠ msgtype", JSON.stringify({ ...signed, payloadtype: "removecolonymsg" }), [400, 403]],
      [
        "unknown payloadtype",
        JSON.stringify(requestEnvelope({ msgtype: "dropdatabasemsg" }, sweep.owner.privateKey)),
        [403],
      ],
      [
        "payloadtype too long",
        JSON.stringify(requestEnvelope({ msgtype: "x".repeat(5000) }, sweep.owner.privateKey)),
        [400],
      ],
      [
        "payload not base64",
        JSON.stringify(requestEnvelope({ msgtype: "getcolonymsg" }, stranger.privateKey)).replace(
          /"payload":"[^"]*"/,
          '"payload":"%%%"',
        ),
        [400, 403],
      ],
      [
        "payload base64 of non-JSON",
        JSON.stringify({ payloadtype: "versionmsg", payload: payloadOf("{x") }),
        [400],
      ],
      [
        "payload base64 of a list",
        JSON.stringify({ payloadtype: "versionmsg", payload: payloadOf("[]") }),
        [400],
      ],
      [
        "payload without msgtype",
        JSON.stringify({ payloadtype: "versionmsg", payload: payloadOf("{}") }),
        [400],
      ],
      [
        "a NUL in the JSON",
        JSON.stringify(
          requestEnvelope({ msgtype: "getcolonymsg", colonyname: "a\u0000b" }, stranger.privateKey),
        ),
        [400],
      ],
      [
        "a stranger's valid call",
        JSON.stringify(
          requestEnvelope({ msgtype: "getcolonymsg", colonyname: "sweep" }, stranger.privateKey),
        ),
        [403],
      ],
    ];
    for (const [what, body, allowed] of envelopes) {
      expectRefused(await q.post(body, { "content-type": "application/json" }), what, allowed);
    }
    // the same refusals whatever the content type (pycolonies sends none)
    expectRefused(
      await q.post("{nope", { "content-type": "application/x-www-form-urlencoded" }),
      "form body",
    );
    expectRefused(await q.postOversized(5 * 1024 * 1024, "announced"), "oversized", [413]);
  });

  it("subscription frames over /pubsub: bad ones answer error frames, the socket stays usable", async () => {
    const socket = await new Promise<WebSocket>((resolve, reject) => {
      const s = new WebSocket(`${q.url.replace(/^http/, "ws")}/pubsub`);
      s.once("open", () => resolve(s));
      s.once("error", reject);
    });
    const frames: Array<{ error?: boolean; status?: number }> = [];
    socket.on("message", (data) => {
      const frame = JSON.parse(String(data)) as { error?: boolean; payload: string };
      const payload = JSON.parse(Buffer.from(frame.payload, "base64").toString()) as { status?: number };
      frames.push({ error: frame.error, status: payload.status });
    });
    const bad = [
      "not json",
      "[]",
      JSON.stringify({ payloadtype: "subscribeprocessmsg", payload: "e30=", signature: "00" }),
      JSON.stringify(
        requestEnvelope(
          { msgtype: "subscribeprocessmsg", processid: "x", state: 2, timeout: 1e15 },
          sweep.owner.privateKey,
        ),
      ),
      JSON.stringify(
        requestEnvelope(
          { msgtype: "subscribeprocessmsg", processid: "a\u0000", state: 9 },
          sweep.owner.privateKey,
        ),
      ),
      JSON.stringify(
        requestEnvelope({ msgtype: "getcolonymsg", colonyname: "sweep" }, sweep.owner.privateKey),
      ),
    ];
    for (const frame of bad) socket.send(frame);
    const deadline = Date.now() + 5_000;
    while (frames.length < bad.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(frames).toHaveLength(bad.length);
    for (const frame of frames) {
      expect(frame.error).toBe(true);
      expect([400, 403, 404]).toContain(frame.status);
    }
    expect(socket.readyState).toBe(socket.OPEN);
    socket.close();
  });

  it("after all of it the service serves: a submit, an assign and a close go through", async () => {
    expect(await q.healthMs()).toBeLessThan(2_000);
    const p = await q.colonies.submitFuncSpec(
      funcSpec({
        funcname: "after",
        colonyname: "sweep",
        executortype: "sweep",
        args: ["\u0000 is data here"],
      }),
      sweep.owner.privateKey,
    );
    const got = await q.colonies.assign("sweep", 5, sweeper.privateKey);
    expect(got?.processid).toBe(p.processid);
    await q.colonies.close(p.processid, ["done \u0000"], sweeper.privateKey);
    expect(await q.colonies.getProcess(p.processid, sweep.owner.privateKey)).toMatchObject({
      state: ProcessStates.SUCCESS,
      out: ["done \u0000"],
      spec: { args: ["\u0000 is data here"] },
    });
  });
});
