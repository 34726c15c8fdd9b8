import { Pool } from "undici";
import { WebSocket } from "ws";
import { APIError, TimeoutError, ValidationError } from "../../errors.js";
import { generatePrivateKey, idOf } from "../crypto.js";
import { requestEnvelope } from "../envelope.js";
import type {
  Attribute,
  ChannelEntry,
  Colony,
  Conditions,
  Executor,
  FunctionSpec,
  LogEntry,
  Process,
  ProcessGraph,
  RegisteredFunction,
  User,
} from "../model.js";
import { completeSpec } from "../model.js";

export type {
  Attribute,
  Colony,
  Executor,
  FunctionSpec,
  LogEntry,
  Process,
  ProcessGraph,
  RegisteredFunction,
  User,
} from "../model.js";
export { generatePrivateKey, idOf } from "../crypto.js";

/** Process states as numbers on the wire. */
export const ProcessStates = { WAITING: 0, RUNNING: 1, SUCCESS: 2, FAILED: 3, CANCELLED: 4 } as const;

/** One message of a process's channel. */
export interface ChannelMessage {
  sequence: number;
  inreplyto: number;
  timestamp: string;
  senderid: string;
  payload: Uint8Array;
  /** The payload as UTF-8 text. */
  text: string;
}

/** How a `Colonies` client reaches its server. */
export interface ColoniesOptions {
  /** The bearer key of a server started with `afs serve --queue-key` (e.g. from `COLONIES_BEARER`). */
  bearer?: string;
}

/** A key pair's private key and the id it signs as. */
export interface Identity {
  privateKey: string;
  id: string;
}

/** A new identity (for a colony, an executor or a user). */
export function newIdentity(): Identity {
  const privateKey = generatePrivateKey();
  return { privateKey, id: idOf(privateKey) };
}

/**
 * A function spec with pycolonies' defaults (priority 0, no wait/exec limit, unlimited
 * retries, `nodename` = `funcname`).
 */
export function funcSpec(options: {
  funcname: string;
  colonyname: string;
  executortype: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  nodename?: string;
  dependencies?: string[];
  executornames?: string[];
  priority?: number;
  maxwaittime?: number;
  maxexectime?: number;
  maxretries?: number;
  label?: string;
  env?: Record<string, string>;
  /** Channels the submitter and the executor talk over while the process runs. */
  channels?: string[];
}): FunctionSpec {
  const conditions: Partial<Conditions> = {
    colonyname: options.colonyname,
    executortype: options.executortype,
    dependencies: options.dependencies ?? [],
    executornames: options.executornames ?? [],
  };
  return completeSpec({
    funcname: options.funcname,
    nodename: options.nodename ?? options.funcname,
    args: options.args ?? [],
    kwargs: options.kwargs ?? {},
    priority: options.priority ?? 0,
    maxwaittime: options.maxwaittime ?? -1,
    maxexectime: options.maxexectime ?? -1,
    maxretries: options.maxretries ?? -1,
    label: options.label ?? "",
    env: options.env ?? {},
    ...(options.channels ? { channels: options.channels } : {}),
    conditions,
  });
}

/**
 * A ColonyOS client (the operations of pycolonies, camelCased): every call is signed
 * with the private key it is given, as the protocol wants.
 */
export class Colonies implements AsyncDisposable {
  private readonly pool: Pool;
  private readonly headers: Record<string, string>;

  /**
   * `url`: the server, e.g. `http://127.0.0.1:8008` (`afs serve`) or a ColonyOS server.
   * `bearer`: the key an `afs serve --queue-key` requires, sent as `Authorization: Bearer`
   * on every call and subscription (ColonyOS servers ignore it).
   */
  constructor(
    readonly url: string,
    options: ColoniesOptions = {},
  ) {
    if (!/^https?:\/\/[^/]+\/?$/.test(url))
      throw new ValidationError("url", `expected http(s)://host:port, got ${url}`);
    if (options.bearer !== undefined && !/^[\x21-\x7e]+$/.test(options.bearer))
      throw new ValidationError("bearer", "expected printable ASCII without spaces");
    this.pool = new Pool(url.replace(/\/$/, ""), { connections: 32 });
    this.headers = options.bearer ? { authorization: `Bearer ${options.bearer}` } : {};
  }

  version(): Promise<{ buildversion: string }> {
    return this.rpc({ msgtype: "versionmsg" }, generatePrivateKey());
  }

  addColony(colony: Colony, serverPrivateKey: string): Promise<Colony> {
    return this.rpc({ msgtype: "addcolonymsg", colony }, serverPrivateKey);
  }

  getColony(colonyname: string, privateKey: string): Promise<Colony> {
    return this.rpc({ msgtype: "getcolonymsg", colonyname }, privateKey);
  }

  getColonies(serverPrivateKey: string): Promise<Colony[]> {
    return this.rpc<Colony[] | null>({ msgtype: "getcoloniesmsg" }, serverPrivateKey).then(orEmpty);
  }

  removeColony(colonyname: string, serverPrivateKey: string): Promise<void> {
    return this.rpc({ msgtype: "removecolonymsg", colonyname }, serverPrivateKey);
  }

  addExecutor(
    executor: { executorid: string; executortype: string; executorname: string; colonyname: string },
    colonyPrivateKey: string,
  ): Promise<Executor> {
    return this.rpc({ msgtype: "addexecutormsg", executor }, colonyPrivateKey);
  }

  approveExecutor(colonyname: string, executorname: string, colonyPrivateKey: string): Promise<void> {
    return this.rpc({ msgtype: "approveexecutormsg", colonyname, executorname }, colonyPrivateKey);
  }

  rejectExecutor(colonyname: string, executorname: string, colonyPrivateKey: string): Promise<void> {
    return this.rpc({ msgtype: "rejectexecutormsg", colonyname, executorname }, colonyPrivateKey);
  }

  removeExecutor(colonyname: string, executorname: string, colonyPrivateKey: string): Promise<void> {
    return this.rpc({ msgtype: "removeexecutormsg", colonyname, executorname }, colonyPrivateKey);
  }

  getExecutors(colonyname: string, privateKey: string): Promise<Executor[]> {
    return this.rpc<Executor[] | null>({ msgtype: "getexecutorsmsg", colonyname }, privateKey).then(orEmpty);
  }

  submitFuncSpec(spec: FunctionSpec, privateKey: string): Promise<Process> {
    return this.rpc({ msgtype: "submitfuncspecmsg", spec }, privateKey);
  }

  /**
   * Waits up to `timeoutS` seconds for a process to run; undefined when none came (404).
   */
  async assign(
    colonyname: string,
    timeoutS: number,
    executorPrivateKey: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<Process | undefined> {
    try {
      return await this.rpc<Process>(
        { msgtype: "assignprocessmsg", colonyname, timeout: timeoutS },
        executorPrivateKey,
        {
          long: true,
          ...(options.signal ? { signal: options.signal } : {}),
        },
      );
    } catch (err) {
      if (err instanceof APIError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** Closes a process as successful, with its output. */
  close(processid: string, out: unknown[], executorPrivateKey: string): Promise<void> {
    return this.rpc({ msgtype: "closesuccessfulmsg", processid, out }, executorPrivateKey);
  }

  /** Closes a process as failed, with its errors. */
  fail(processid: string, errors: string[], executorPrivateKey: string): Promise<void> {
    return this.rpc({ msgtype: "closefailedmsg", processid, errors }, executorPrivateKey);
  }

  setOutput(processid: string, out: unknown[], executorPrivateKey: string): Promise<void> {
    return this.rpc({ msgtype: "setoutputmsg", processid, out }, executorPrivateKey);
  }

  getProcess(processid: string, privateKey: string): Promise<Process> {
    return this.rpc({ msgtype: "getprocessmsg", processid }, privateKey);
  }

  getProcesses(colonyname: string, state: number, count: number, privateKey: string): Promise<Process[]> {
    return this.rpc<Process[] | null>(
      { msgtype: "getprocessesmsg", colonyname, state, count },
      privateKey,
    ).then(orEmpty);
  }

  removeProcess(processid: string, privateKey: string): Promise<void> {
    return this.rpc({ msgtype: "removeprocessmsg", processid, all: false }, privateKey);
  }

  /** Cancels a waiting or running process (a workflow's: its whole workflow). */
  cancelProcess(processid: string, privateKey: string): Promise<void> {
    return this.rpc({ msgtype: "cancelprocessmsg", processid }, privateKey);
  }

  /** Removes a colony's processes outside workflows: all (`state` -1) or those of one finished state. */
  removeAllProcesses(colonyname: string, colonyPrivateKey: string, state = -1): Promise<void> {
    return this.rpc({ msgtype: "removeallprocessesmsg", colonyname, state }, colonyPrivateKey);
  }

  submitWorkflow(
    colonyname: string,
    functionspecs: FunctionSpec[],
    privateKey: string,
  ): Promise<ProcessGraph> {
    return this.rpc({ msgtype: "submitworkflowspecmsg", spec: { colonyname, functionspecs } }, privateKey);
  }

  getProcessGraph(processgraphid: string, privateKey: string): Promise<ProcessGraph> {
    return this.rpc({ msgtype: "getprocessgraphmsg", processgraphid }, privateKey);
  }

  getProcessGraphs(
    colonyname: string,
    state: number,
    count: number,
    privateKey: string,
  ): Promise<ProcessGraph[]> {
    return this.rpc<ProcessGraph[] | null>(
      { msgtype: "getprocessgraphsmsg", colonyname, state, count },
      privateKey,
    ).then(orEmpty);
  }

  /** Cancels every unfinished process of a workflow. */
  cancelProcessGraph(processgraphid: string, privateKey: string): Promise<void> {
    return this.rpc({ msgtype: "cancelprocessgraphmsg", processgraphid }, privateKey);
  }

  /** Removes a workflow that is not running, with its processes. */
  removeProcessGraph(processgraphid: string, privateKey: string): Promise<void> {
    return this.rpc({ msgtype: "removeprocessgraphmsg", processgraphid, all: false }, privateKey);
  }

  removeAllProcessGraphs(colonyname: string, colonyPrivateKey: string, state = -1): Promise<void> {
    return this.rpc({ msgtype: "removeallprocessgraphsmsg", colonyname, state }, colonyPrivateKey);
  }

  /**
   * Appends a message to a process's channel (declared in its spec's `channels`); the
   * sender numbers its messages with `sequence` (a retried append is not doubled).
   */
  channelAppend(
    processid: string,
    name: string,
    sequence: number,
    payload: string | Uint8Array,
    privateKey: string,
    inreplyto = 0,
  ): Promise<void> {
    const bytes = typeof payload === "string" ? Buffer.from(payload, "utf8") : Buffer.from(payload);
    return this.rpc(
      {
        msgtype: "channelappendmsg",
        processid,
        name,
        sequence,
        inreplyto,
        payload: bytes.toString("base64"),
      },
      privateKey,
    );
  }

  /** A channel's messages from position `afterseq` (0: from the start), at most `limit` (0: all). */
  channelRead(
    processid: string,
    name: string,
    afterseq: number,
    limit: number,
    privateKey: string,
  ): Promise<ChannelMessage[]> {
    return this.rpc<ChannelEntry[] | null>(
      { msgtype: "channelreadmsg", processid, name, afterseq, limit },
      privateKey,
    ).then((entries) => orEmpty(entries).map(messageOf));
  }

  /**
   * A channel's messages as they are appended, from position `afterseq`, over the
   * WebSocket `/pubsub`; the iteration ends after `timeoutS` (or when the caller breaks).
   */
  async *subscribeChannel(
    processid: string,
    name: string,
    afterseq: number,
    timeoutS: number,
    privateKey: string,
  ): AsyncGenerator<ChannelMessage> {
    const frames = this.subscription(
      { msgtype: "subscribechannelmsg", processid, name, afterseq, timeout: timeoutS },
      privateKey,
    );
    for await (const payload of frames) {
      const entries = (payload ?? []) as ChannelEntry[];
      if (entries.length === 0) return; // the server's final frame
      for (const entry of entries) yield messageOf(entry);
    }
  }

  /** A running process adds a child to its workflow (map/reduce). */
  addChild(
    options: {
      processgraphid: string;
      parentprocessid: string;
      childprocessid?: string;
      spec: FunctionSpec;
      insert?: boolean;
    },
    executorPrivateKey: string,
  ): Promise<Process> {
    return this.rpc(
      {
        msgtype: "addchildmsg",
        processgraphid: options.processgraphid,
        parentprocessid: options.parentprocessid,
        childprocessid: options.childprocessid ?? "",
        insert: options.insert ?? false,
        spec: options.spec,
      },
      executorPrivateKey,
    );
  }

  addUser(
    user: Omit<User, "email" | "phone"> & Partial<Pick<User, "email" | "phone">>,
    colonyPrivateKey: string,
  ): Promise<User> {
    return this.rpc({ msgtype: "addusermsg", user: { email: "", phone: "", ...user } }, colonyPrivateKey);
  }

  getUsers(colonyname: string, privateKey: string): Promise<User[]> {
    return this.rpc<User[] | null>({ msgtype: "getusersmsg", colonyname }, privateKey).then(orEmpty);
  }

  removeUser(colonyname: string, name: string, colonyPrivateKey: string): Promise<void> {
    return this.rpc({ msgtype: "removeusermsg", colonyname, name }, colonyPrivateKey);
  }

  getExecutorById(colonyname: string, executorid: string, privateKey: string): Promise<Executor> {
    return this.rpc({ msgtype: "getexecutorbyidmsg", colonyname, executorid }, privateKey);
  }

  /** An attribute of a running process (type 1: output, as pycolonies sets it). */
  addAttribute(
    processid: string,
    key: string,
    value: string,
    executorPrivateKey: string,
  ): Promise<Attribute> {
    return this.rpc(
      { msgtype: "addattributemsg", attribute: { targetid: processid, key, value, attributetype: 1 } },
      executorPrivateKey,
    );
  }

  getAttribute(attributeid: string, privateKey: string): Promise<Attribute> {
    return this.rpc({ msgtype: "getattributemsg", attributeid }, privateKey);
  }

  /** An executor registers a function it runs. */
  addFunction(
    fun: {
      colonyname: string;
      executorname: string;
      funcname: string;
      description?: string;
      /** Registering again under the same id replaces the caller's own function. */
      functionid?: string;
    },
    executorPrivateKey: string,
  ): Promise<RegisteredFunction> {
    return this.rpc({ msgtype: "addfunctionmsg", fun }, executorPrivateKey);
  }

  getFunctions(colonyname: string, privateKey: string, executorname = ""): Promise<RegisteredFunction[]> {
    return this.rpc<RegisteredFunction[] | null>(
      { msgtype: "getfunctionsmsg", colonyname, executorname },
      privateKey,
    ).then(orEmpty);
  }

  removeFunction(functionid: string, executorPrivateKey: string): Promise<void> {
    return this.rpc({ msgtype: "removefunctionmsg", functionid }, executorPrivateKey);
  }

  /**
   * Waits until the process is in `state` (default SUCCESS), over the WebSocket `/pubsub`
   * (as pycolonies' `wait`): resolves with the process; `TimeoutError` after `timeoutS`.
   */
  wait(
    processid: string,
    timeoutS: number,
    privateKey: string,
    state: number = ProcessStates.SUCCESS,
  ): Promise<Process> {
    const frames = this.subscription(
      {
        msgtype: "subscribeprocessmsg",
        processid,
        colonyname: "",
        executortype: "",
        state,
        timeout: timeoutS,
      },
      privateKey,
    );
    return (async () => {
      for await (const payload of frames) return payload as Process;
      throw new TimeoutError(`process ${processid} reaching state ${state}`, timeoutS * 1000);
    })();
  }

  /**
   * The payloads a `/pubsub` subscription pushes, until the server closes the socket (its
   * timeout) or the consumer stops; an error frame rejects with `APIError`.
   */
  private async *subscription(
    message: Record<string, unknown> & { msgtype: string },
    privateKey: string,
  ): AsyncGenerator<unknown> {
    const url = `${this.url.replace(/^http/, "ws").replace(/\/$/, "")}/pubsub`;
    const socket = new WebSocket(url, { headers: this.headers });
    const queue: Array<{ payload?: unknown; error?: Error; end?: true }> = [];
    let wake: (() => void) | undefined;
    const put = (item: (typeof queue)[number]) => {
      queue.push(item);
      wake?.();
    };
    socket.on("open", () => socket.send(JSON.stringify(requestEnvelope(message, privateKey))));
    socket.on("message", (data) => {
      const frame = JSON.parse(String(data)) as { payload: string; error?: boolean };
      const payload = JSON.parse(Buffer.from(frame.payload, "base64").toString("utf8")) as unknown;
      if (!frame.error) return put({ payload });
      const failure = payload as { status?: number; message?: string };
      put({
        error: new APIError(
          failure.status ?? 400,
          "COLONIES_ERROR",
          failure.message ?? "subscription refused",
        ),
      });
    });
    socket.on("close", () => put({ end: true }));
    socket.on("error", (error) => put({ error }));
    try {
      for (;;) {
        const item = queue.shift();
        if (!item) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        if (item.error) throw item.error;
        if (item.end) return;
        yield item.payload;
      }
    } finally {
      socket.close();
    }
  }

  addLog(processid: string, message: string, executorPrivateKey: string): Promise<void> {
    return this.rpc({ msgtype: "addlogmsg", processid, message }, executorPrivateKey);
  }

  getLogs(colonyname: string, processid: string, count: number, privateKey: string): Promise<LogEntry[]> {
    return this.rpc<LogEntry[] | null>(
      { msgtype: "getlogsmsg", colonyname, processid, count, since: 0, executorname: "" },
      privateKey,
    ).then(orEmpty);
  }

  getColonyStatistics(colonyname: string, privateKey: string): Promise<Record<string, number>> {
    return this.rpc({ msgtype: "getcolonystatsmsg", colonyname }, privateKey);
  }

  /** Closes the connections. */
  async disconnect(): Promise<void> {
    await this.pool.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.disconnect();
  }

  private async rpc<T>(
    message: Record<string, unknown> & { msgtype: string },
    privateKey: string,
    options: { long?: boolean; signal?: AbortSignal } = {},
  ): Promise<T> {
    const res = await this.pool.request({
      ...(options.signal ? { signal: options.signal } : {}),
      method: "POST",
      path: "/api",
      headers: { "content-type": "application/json", ...this.headers },
      body: JSON.stringify(requestEnvelope(message, privateKey)),
      headersTimeout: options.long ? 0 : 60_000,
      bodyTimeout: options.long ? 0 : 60_000,
    });
    const text = await res.body.text();
    let reply: { payload?: string; error?: boolean };
    try {
      reply = JSON.parse(text) as typeof reply;
    } catch {
      throw new APIError(
        res.statusCode,
        "BAD_REPLY",
        `not a ColonyOS reply (HTTP ${res.statusCode}): ${text.slice(0, 200)}`,
      );
    }
    const payload = JSON.parse(
      Buffer.from(reply.payload ?? "", "base64").toString("utf8") || "{}",
    ) as unknown;
    if (res.statusCode !== 200 || reply.error) {
      const failure = payload as { status?: number; message?: string };
      throw new APIError(res.statusCode, "COLONIES_ERROR", failure.message ?? `HTTP ${res.statusCode}`);
    }
    return payload as T;
  }
}

function messageOf(entry: ChannelEntry): ChannelMessage {
  const payload = Buffer.from(entry.payload ?? "", "base64");
  return {
    sequence: entry.sequence,
    inreplyto: entry.inreplyto ?? 0,
    timestamp: entry.timestamp,
    senderid: entry.senderid,
    payload: new Uint8Array(payload),
    text: payload.toString("utf8"),
  };
}

function orEmpty<T>(list: T[] | null): T[] {
  return list ?? [];
}
