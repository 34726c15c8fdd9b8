import { z } from "zod";
import { RpcError } from "./envelope.js";

/**
 * The queue's messages as the server accepts them: one zod schema per msgtype, applied
 * at the boundary, so every handler works on typed, bounded values and a bad field is a
 * 400 naming it, never a 500 further in (docs/colonyos-protocol.md §10).
 *
 * As ColonyOS (Go's decoder): unknown fields are ignored, `null` is "absent" (Python
 * clients send `null` for every unset field), a value of the wrong JSON type is refused,
 * and so is a fraction or an out-of-range number where Go has an integer.
 */

/** Names and ids: what the store keeps in indexed columns and queries by. */
export const MAX_NAME_CHARS = 256;
/** Seconds a deadline may lie ahead (maxwaittime, maxexectime): 2^31 - 1, about 68 years. */
export const MAX_DEADLINE_S = 2_147_483_647;
/** Longest long-poll (`assignprocessmsg`) and subscription, in seconds: one day. */
export const MAX_WAIT_S = 86_400;
/** ColonyOS' priority range. */
export const MAX_PRIORITY = 50_000;
const MAX_INT32 = 2_147_483_647;
/** Log timestamps are Unix nanoseconds (about 1.7e18): past 2^53, below 2^63. */
const MAX_NS = 2 ** 63;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const absentIfNull = (value: unknown) => (value === null ? undefined : value);

/** A name or id: no NUL (PostgreSQL text refuses it), well-formed UTF-16, at most 256 characters. */
const nameText = z
  .string()
  .max(MAX_NAME_CHARS)
  .refine((s) => !s.includes("\u0000"), "must not hold NUL characters")
  .refine((s) => !LONE_SURROGATE.test(s), "must be well-formed Unicode");

function name(): z.ZodType<string, unknown> {
  return z.preprocess(absentIfNull, nameText.default(""));
}

function text(): z.ZodType<string, unknown> {
  return z.preprocess(absentIfNull, z.string().default(""));
}

/** An integer in [min, max], `fallback` when absent (Go's zero value, or the protocol's default). */
function int(min: number, max: number, fallback: number): z.ZodType<number, unknown> {
  return z.preprocess(absentIfNull, z.number().int().min(min).max(max).default(fallback));
}

function bool(): z.ZodType<boolean, unknown> {
  return z.preprocess(absentIfNull, z.boolean().default(false));
}

function list<T>(item: z.ZodType<T, unknown>, max = 100_000): z.ZodType<T[], unknown> {
  return z.preprocess(absentIfNull, z.array(item).max(max).default([]));
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * A JSON object kept as sent (kwargs, capabilities, fs): checked, not copied, so keys
 * such as `__proto__` stay data.
 */
function jsonObject(what: string): z.ZodType<Record<string, unknown> | undefined, unknown> {
  return z.preprocess(
    absentIfNull,
    z.custom<Record<string, unknown>>(isPlainObject, `${what} must be an object`).optional(),
  );
}

/** A string-to-string map kept as sent (`env`). */
const stringMap = z.preprocess(
  absentIfNull,
  z
    .custom<Record<string, string>>(
      (v) => isPlainObject(v) && Object.values(v).every((x) => typeof x === "string"),
      "must be an object of strings",
    )
    .optional(),
);

const conditions = z.object({
  colonyname: name(),
  executornames: list(nameText, 1_000),
  executortype: name(),
  dependencies: list(nameText),
  nodes: int(0, MAX_INT32, 0),
  cpu: text(),
  processes: int(0, MAX_INT32, 0),
  processespernode: int(0, MAX_INT32, 0),
  mem: text(),
  storage: text(),
  gpu: z.preprocess(
    absentIfNull,
    z
      .object({
        name: text(),
        mem: text(),
        count: int(0, MAX_INT32, 0),
        nodecount: int(0, MAX_INT32, 0),
      })
      .optional(),
  ),
  walltime: int(0, Number.MAX_SAFE_INTEGER, 0),
});

/** A FunctionSpec (§4.1). -1 is "no limit" for the deadlines and retries, as in ColonyOS. */
export const functionSpecSchema = z.object({
  nodename: name(),
  funcname: name(),
  args: list(z.unknown()),
  kwargs: jsonObject("kwargs"),
  priority: int(-MAX_PRIORITY, MAX_PRIORITY, 0),
  maxwaittime: int(-1, MAX_DEADLINE_S, -1),
  maxexectime: int(-1, MAX_DEADLINE_S, -1),
  maxretries: int(-1, MAX_INT32, -1),
  conditions: z.preprocess(absentIfNull, conditions.optional()),
  label: name(),
  fs: jsonObject("fs"),
  env: stringMap,
  channels: list(nameText, 100),
});

export type FunctionSpecInput = z.output<typeof functionSpecSchema>;

const colonyname = name();
const processid = name();
const count = (max: number) => int(0, max, 0);
const state = int(0, 4, 0);
/** `removeall*`: -1 is every state. */
const stateOrAll = int(-1, 4, -1);
/** Subscriptions: at most a day; 0 or -1 take the server's default. */
const subscriptionTimeout = int(-1, MAX_WAIT_S, 0);

const none = z.object({});

/** Every msgtype the server answers, and its fields. */
export const MESSAGES = {
  versionmsg: none,
  addcolonymsg: z.object({
    colony: z.object({ colonyid: name(), name: name() }),
  }),
  getcoloniesmsg: none,
  getcolonymsg: z.object({ colonyname }),
  removecolonymsg: z.object({ colonyname }),
  addexecutormsg: z.object({
    executor: z.object({
      executorid: name(),
      executortype: name(),
      executorname: name(),
      colonyname: name(),
      requirefuncreg: bool(),
      location: z.preprocess(
        absentIfNull,
        z
          .object({
            long: z.preprocess(absentIfNull, z.number().min(-180).max(180).default(0)),
            lat: z.preprocess(absentIfNull, z.number().min(-90).max(90).default(0)),
            name: text(),
            desc: text(),
          })
          .optional(),
      ),
      capabilities: jsonObject("capabilities"),
    }),
  }),
  approveexecutormsg: z.object({ colonyname, executorname: name() }),
  rejectexecutormsg: z.object({ colonyname, executorname: name() }),
  removeexecutormsg: z.object({ colonyname, executorname: name() }),
  getexecutorsmsg: z.object({ colonyname }),
  getexecutormsg: z.object({ colonyname, executorname: name() }),
  getexecutorbyidmsg: z.object({ colonyname, executorid: name() }),
  submitfuncspecmsg: z.object({ spec: functionSpecSchema }),
  assignprocessmsg: z.object({
    colonyname,
    // 0 is refused by the server (as ColonyOS); negative: one look, no wait
    timeout: int(-MAX_INT32, MAX_WAIT_S, 0),
    availablecpu: text(),
    availablemem: text(),
  }),
  getprocessmsg: z.object({ processid }),
  getprocessesmsg: z.object({
    colonyname,
    count: count(MAX_INT32),
    state,
    executortype: name(),
    label: name(),
    initiator: name(),
  }),
  removeprocessmsg: z.object({ processid, all: bool() }),
  removeallprocessesmsg: z.object({ colonyname, state: stateOrAll }),
  cancelprocessmsg: z.object({ processid }),
  cancelprocessgraphmsg: z.object({ processgraphid: name() }),
  closesuccessfulmsg: z.object({ processid, out: list(z.unknown()) }),
  closefailedmsg: z.object({ processid, errors: list(z.string()) }),
  setoutputmsg: z.object({ processid, out: list(z.unknown()) }),
  submitworkflowspecmsg: z.object({
    spec: z.object({ colonyname, functionspecs: list(functionSpecSchema) }),
  }),
  getprocessgraphmsg: z.object({ processgraphid: name() }),
  getprocessgraphsmsg: z.object({ colonyname, count: count(MAX_INT32), state }),
  removeprocessgraphmsg: z.object({ processgraphid: name(), all: bool() }),
  removeallprocessgraphsmsg: z.object({ colonyname, state: stateOrAll }),
  addchildmsg: z.object({
    processgraphid: name(),
    parentprocessid: name(),
    childprocessid: name(),
    insert: bool(),
    spec: functionSpecSchema,
  }),
  channelappendmsg: z.object({
    processid,
    name: name(),
    sequence: int(0, Number.MAX_SAFE_INTEGER, 0),
    inreplyto: int(0, Number.MAX_SAFE_INTEGER, 0),
    // base64 text (Go's []byte) or a list of byte numbers (colonies-ts): checked by the channel hub
    payload: z.preprocess(absentIfNull, z.union([z.string(), z.array(z.number())]).optional()),
    payloadtype: text(),
  }),
  channelreadmsg: z.object({
    processid,
    name: name(),
    afterseq: int(0, Number.MAX_SAFE_INTEGER, 0),
    limit: count(MAX_INT32),
  }),
  addlogmsg: z.object({ processid, message: text() }),
  getlogsmsg: z.object({
    colonyname,
    processid,
    executorname: name(),
    count: count(MAX_INT32),
    since: z.preprocess(
      absentIfNull,
      z.number().min(0).max(MAX_NS).refine(Number.isInteger, "expected an integer").default(0),
    ),
    latest: bool(),
  }),
  getcolonystatsmsg: z.object({ colonyname }),
  addusermsg: z.object({
    user: z.object({
      colonyname: name(),
      userid: name(),
      name: name(),
      email: text(),
      phone: text(),
    }),
  }),
  getusersmsg: z.object({ colonyname }),
  getusermsg: z.object({ colonyname, name: name() }),
  removeusermsg: z.object({ colonyname, name: name() }),
  addattributemsg: z.object({
    attribute: z.object({
      targetid: name(),
      key: text(),
      value: text(),
      attributetype: int(0, 3, 0),
    }),
  }),
  getattributemsg: z.object({ attributeid: name() }),
  addfunctionmsg: z.object({
    fun: z.object({
      functionid: name(),
      colonyname: name(),
      executorname: name(),
      funcname: name(),
      description: text(),
      args: list(z.unknown()),
    }),
  }),
  getfunctionsmsg: z.object({ colonyname, executorname: name() }),
  removefunctionmsg: z.object({ functionid: name() }),
  subscribeprocessmsg: z.object({
    colonyname,
    processid,
    executortype: name(),
    state: int(0, 4, 2),
    timeout: subscriptionTimeout,
  }),
  subscribeprocessesmsg: z.object({
    colonyname,
    executortype: name(),
    state: int(0, 4, 2),
    timeout: subscriptionTimeout,
  }),
  subscribechannelmsg: z.object({
    processid,
    name: name(),
    afterseq: int(0, Number.MAX_SAFE_INTEGER, 0),
    timeout: subscriptionTimeout,
  }),
} as const;

export type MsgType = keyof typeof MESSAGES;
export type Message<T extends MsgType> = z.output<(typeof MESSAGES)[T]>;

/** A decoded message, typed by its msgtype. */
export type AnyMessage = { [T in MsgType]: { msgtype: T; message: Message<T> } }[MsgType];

/** The subscriptions `/pubsub` takes; the rest are `POST /api` calls. */
export const SUBSCRIPTIONS = new Set<MsgType>([
  "subscribeprocessmsg",
  "subscribeprocessesmsg",
  "subscribechannelmsg",
]);

/**
 * Checks a message against its msgtype's schema. An unknown msgtype is a 403, as the
 * ColonyOS server answers it; a bad field a 400 that names it.
 */
export function parseMessage(msgtype: string, message: Record<string, unknown>): AnyMessage {
  if (!Object.hasOwn(MESSAGES, msgtype)) throw new RpcError(403, `invalid rpcMsg.PayloadType, ${msgtype}`);
  const type = msgtype as MsgType;
  const result = MESSAGES[type].safeParse(message);
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = issue?.path.map(String).join(".") || "message";
    throw new RpcError(400, `Invalid ${msgtype}: ${path}: ${issue?.message ?? "invalid"}`);
  }
  return { msgtype: type, message: result.data } as AnyMessage;
}
