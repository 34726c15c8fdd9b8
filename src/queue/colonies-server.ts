import { EventEmitter } from "node:events";
import { ConflictError } from "../errors.js";
import { ChannelHub } from "./channels.js";
import { RpcError } from "./envelope.js";
import type { FunctionSpecInput, Message } from "./messages.js";
import { SUBSCRIPTIONS, parseMessage } from "./messages.js";
import type {
  Attribute,
  Colony,
  Executor,
  FunctionSpec,
  Process,
  ProcessGraph,
  ProcessState,
  RegisteredFunction,
  User,
} from "./model.js";
import {
  APPROVED,
  CANCELLED,
  FAILED,
  PENDING,
  REJECTED,
  RUNNING,
  SUCCESS,
  WAITING,
  ZERO_TIME,
  completeSpec,
  newId,
  newProcess,
  sha3Hex,
  timeMs,
  timeString,
} from "./model.js";
import {
  cancelled,
  finished,
  givenBack,
  rejectCycles,
  started,
  stateName,
  stateOf,
} from "./process-transitions.js";
import type { QueueStore } from "./queue-store.js";
import { SerialQueue } from "./serial-queue.js";
import { timerDelay } from "../util/deadline.js";

/** A request the server answers: its message and who signed it. */
export interface Call {
  msgtype: string;
  callerId: string | undefined;
  message: Record<string, unknown>;
}

/** What the transport knows about the request besides its message. */
export interface CallContext {
  /**
   * Aborts when the caller is gone before the answer reached it: a long-poll assign stops
   * waiting, and a process it took is given back.
   */
  signal?: AbortSignal;
}

export interface ColoniesServerOptions {
  store: QueueStore;
  /** The server owner's id (`idOf` of its private key): it adds and removes colonies. */
  serverId: string;
  /** How often deadlines are checked; default 1 s (as ColonyOS). */
  deadlineCheckMs?: number;
  /**
   * When set, `/api` and `/pubsub` also require `Authorization: Bearer <key>`: the
   * mitigation of the protocol's replayable envelopes (docs/colonyos-protocol.md §10).
   */
  bearerKey?: string | undefined;
}

const MAX_COUNT = 100;
const MAX_LOG_COUNT = 500;
/** How stale an executor's `lastheardfromtime` may be before an assign call records it again. */
const HEARD_FROM_RESOLUTION_MS = 5_000;
/** Subscriptions without a timeout of their own. */
const DEFAULT_SUBSCRIPTION_S = 3600;
const DEFAULT_CHANNEL_SUBSCRIPTION_S = 30;
const BUILD = { buildversion: "affinetes", buildtime: "" };
const HEX_ID = /^[0-9a-f]{64}$/;

/**
 * The process queue on the ColonyOS protocol: colonies, executors, processes with
 * atomic long-poll assignment, deadlines and retries, and workflows (DAGs with dynamic
 * children). Answers decoded, verified calls; `RpcError` carries the HTTP status.
 *
 * Every call that names an object (process, graph, log, attribute, function, user,
 * channel, executor) is checked against the colony the object belongs to, never the
 * colony the message says.
 */
export class ColoniesServer {
  private readonly channels: ChannelHub;
  /** Every stored change of a process, for subscriptions. */
  private readonly changes = new EventEmitter();
  /** Changes that read and write several processes (closes, graph resolution, deadlines) run one at a time. */
  private readonly serial = new SerialQueue();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ColoniesServerOptions) {
    this.changes.setMaxListeners(0); // one per subscription
    this.channels = new ChannelHub(options.store);
  }

  /** The bearer key `/api` and `/pubsub` require, when one is configured. */
  get bearerKey(): string | undefined {
    return this.options.bearerKey || undefined;
  }

  /** Starts the deadline loop (maxwaittime, maxexectime and retries). */
  start(): void {
    this.timer ??= setInterval(
      () => void this.enforceDeadlines().catch(() => undefined),
      this.options.deadlineCheckMs ?? 1000,
    );
    this.timer.unref();
  }

  /** Stops the deadline loop; long-poll assigns still waiting end when the store closes. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Answers one call; the reply payload (JSON). */
  async handle(call: Call, context: CallContext = {}): Promise<unknown> {
    const parsed = parseMessage(call.msgtype, call.message);
    if (SUBSCRIPTIONS.has(parsed.msgtype))
      throw new RpcError(400, `${parsed.msgtype} is a subscription: send it over the WebSocket /pubsub`);
    const caller = call.callerId ?? "";
    const store = this.options.store;
    switch (parsed.msgtype) {
      case "versionmsg":
        return { ...BUILD, msgtype: "versionmsg" };
      case "addcolonymsg":
        return this.addColony(caller, parsed.message.colony);
      case "getcoloniesmsg":
        this.requireServerOwner(caller);
        return store.listColonies();
      case "getcolonymsg":
        return (await this.member(caller, parsed.message.colonyname)).colony;
      case "removecolonymsg":
        this.requireServerOwner(caller);
        if (!(await store.removeColony(parsed.message.colonyname))) throw notFound("colony");
        return {};
      case "addexecutormsg":
        return this.addExecutor(caller, parsed.message.executor);
      case "approveexecutormsg":
        return this.setExecutorState(caller, parsed.message, APPROVED);
      case "rejectexecutormsg":
        return this.setExecutorState(caller, parsed.message, REJECTED);
      case "removeexecutormsg": {
        const { colonyname, executorname } = parsed.message;
        await this.colonyOwner(caller, colonyname);
        if (!(await store.removeExecutor(colonyname, executorname))) throw notFound("executor");
        return {};
      }
      case "getexecutorsmsg":
        await this.member(caller, parsed.message.colonyname, { approved: false });
        return store.listExecutors(parsed.message.colonyname);
      case "getexecutormsg": {
        const { colonyname, executorname } = parsed.message;
        await this.member(caller, colonyname);
        const executor = await store.getExecutor(colonyname, executorname);
        if (!executor) throw notFound("executor");
        return executor;
      }
      case "getexecutorbyidmsg": {
        const { colonyname, executorid } = parsed.message;
        await this.member(caller, colonyname);
        const executor = await store.getExecutorById(executorid);
        if (!executor || executor.colonyname !== colonyname) throw notFound("executor");
        return executor;
      }
      case "submitfuncspecmsg":
        return this.submit(caller, parsed.message.spec);
      case "assignprocessmsg":
        return this.assign(caller, parsed.message.colonyname, parsed.message.timeout, context.signal);
      case "getprocessmsg":
        return this.readableProcess(caller, parsed.message.processid);
      case "getprocessesmsg":
        return this.listProcesses(caller, parsed.message);
      case "removeprocessmsg":
        return this.removeProcess(caller, parsed.message.processid);
      case "removeallprocessesmsg": {
        const { colonyname, state } = parsed.message;
        await this.colonyOwner(caller, colonyname);
        if (state === RUNNING) throw new RpcError(400, "running processes are not removed: cancel them");
        await store.removeProcesses({ colonyname, ...(state === -1 ? {} : { state: stateOf(state) }) });
        return {};
      }
      case "cancelprocessmsg":
        return this.serial.run(() => this.cancelProcess(caller, parsed.message.processid));
      case "cancelprocessgraphmsg":
        return this.serial.run(() => this.cancelGraph(caller, parsed.message.processgraphid));
      case "closesuccessfulmsg": {
        const { processid, out } = parsed.message;
        return this.serial.run(() => this.closeSuccessful(caller, processid, out));
      }
      case "closefailedmsg": {
        const { processid, errors } = parsed.message;
        return this.serial.run(() => this.closeFailed(caller, processid, errors));
      }
      case "setoutputmsg": {
        const { processid, out } = parsed.message;
        return this.serial.run(() => this.setOutput(caller, processid, out));
      }
      case "submitworkflowspecmsg":
        return this.submitWorkflow(caller, parsed.message.spec);
      case "getprocessgraphmsg":
        return this.readableGraph(caller, parsed.message.processgraphid);
      case "getprocessgraphsmsg":
        return this.listGraphs(caller, parsed.message);
      case "removeprocessgraphmsg": {
        const graph = await this.readableGraph(caller, parsed.message.processgraphid);
        if (graph.state === RUNNING) throw new RpcError(400, "the workflow is running: cancel it first");
        await store.removeGraphs({ processgraphid: graph.processgraphid });
        return {};
      }
      case "removeallprocessgraphsmsg": {
        const { colonyname, state } = parsed.message;
        await this.colonyOwner(caller, colonyname);
        if (state === RUNNING) throw new RpcError(400, "running workflows are not removed: cancel them");
        await store.removeGraphs({ colonyname, ...(state === -1 ? {} : { state: stateOf(state) }) });
        return {};
      }
      case "channelappendmsg": {
        const m = parsed.message;
        const process = await this.channelProcess(caller, m.processid, m.name, "write");
        await this.channels.append(process, m.name, caller, m);
        return {};
      }
      case "channelreadmsg": {
        const m = parsed.message;
        const process = await this.channelProcess(caller, m.processid, m.name, "read");
        return this.channels.read(process, m.name, m.afterseq, m.limit);
      }
      case "addchildmsg":
        return this.serial.run(() => this.addChild(caller, parsed.message));
      case "addlogmsg":
        return this.addLog(caller, parsed.message.processid, parsed.message.message);
      case "getlogsmsg":
        return this.getLogs(caller, parsed.message);
      case "getcolonystatsmsg":
        return this.colonyStatistics(caller, parsed.message.colonyname);
      case "addusermsg":
        return this.addUser(caller, parsed.message.user);
      case "getusersmsg":
        await this.member(caller, parsed.message.colonyname, { approved: false });
        return store.listObjects("user", parsed.message.colonyname);
      case "getusermsg":
        return this.user(caller, parsed.message.colonyname, parsed.message.name);
      case "removeusermsg": {
        const { colonyname, name } = parsed.message;
        await this.colonyOwner(caller, colonyname);
        const user = await this.user(caller, colonyname, name);
        await store.deleteObject("user", user.userid);
        return {};
      }
      case "addattributemsg":
        return this.serial.run(() => this.addAttribute(caller, parsed.message.attribute));
      case "getattributemsg": {
        const attribute = await store.getObject<Attribute>("attribute", parsed.message.attributeid);
        if (!attribute) throw notFound("attribute");
        await this.member(caller, attribute.targetcolonyname);
        return attribute;
      }
      case "addfunctionmsg":
        return this.addFunction(caller, parsed.message.fun);
      case "getfunctionsmsg": {
        const { colonyname, executorname } = parsed.message;
        await this.member(caller, colonyname);
        const all = await store.listObjects<RegisteredFunction>("function", colonyname);
        return executorname ? all.filter((f) => f.executorname === executorname) : all;
      }
      case "removefunctionmsg": {
        const fn = await store.getObject<RegisteredFunction>("function", parsed.message.functionid);
        if (!fn) throw notFound("function");
        const { executor } = await this.member(caller, fn.colonyname);
        if (executor?.executorname !== fn.executorname)
          throw new RpcError(403, "Access denied, only the executor that added a function removes it");
        await store.deleteObject("function", fn.functionid);
        return {};
      }
      default:
        throw new RpcError(403, `invalid rpcMsg.PayloadType, ${parsed.msgtype}`);
    }
  }

  // ---- colonies and executors

  private async addColony(caller: string, input: Message<"addcolonymsg">["colony"]): Promise<Colony> {
    this.requireServerOwner(caller);
    const { colonyid, name } = input;
    if (!HEX_ID.test(colonyid)) throw new RpcError(400, "colony id must be 64 hex characters");
    if (!name) throw new RpcError(400, "colony name is missing");
    const record = { colonyid, name };
    await this.options.store.addColony(record).catch(conflict(`a colony named ${name} exists already`));
    return record;
  }

  private async addExecutor(caller: string, e: Message<"addexecutormsg">["executor"]): Promise<Executor> {
    await this.colonyOwner(caller, e.colonyname);
    const now = timeString(Date.now());
    const executor: Executor = {
      executorid: e.executorid,
      executortype: e.executortype,
      executorname: e.executorname,
      colonyname: e.colonyname,
      state: PENDING,
      requirefuncreg: e.requirefuncreg,
      commissiontime: now,
      lastheardfromtime: now,
      location: { long: 0, lat: 0, name: "", desc: "", ...e.location },
      capabilities: capabilitiesOf(e.capabilities),
      allocations: { projects: {} },
    };
    if (!HEX_ID.test(executor.executorid)) throw new RpcError(400, "executor id must be 64 hex characters");
    if (!executor.executorname || !executor.executortype)
      throw new RpcError(400, "an executor needs executorname and executortype");
    await this.options.store
      .addExecutor(executor)
      .catch(
        conflict(
          `an executor named ${executor.executorname} exists in colony ${e.colonyname}, or one with that id in a colony`,
        ),
      );
    return executor;
  }

  private async setExecutorState(
    caller: string,
    m: { colonyname: string; executorname: string },
    state: number,
  ): Promise<object> {
    await this.colonyOwner(caller, m.colonyname);
    const executor = await this.options.store.getExecutor(m.colonyname, m.executorname);
    if (!executor) throw notFound("executor");
    await this.options.store.updateExecutor({ ...executor, state });
    return {};
  }

  // ---- processes

  private async submit(caller: string, input: FunctionSpecInput): Promise<Process> {
    const spec = specOf(input);
    const who = await this.member(caller, spec.conditions.colonyname);
    const process = newProcess(spec, { id: caller, name: who.name }, Date.now());
    await this.insert([process]);
    this.wakeFor(process);
    return process;
  }

  /** Wakes the executors a WAITING process may go to: one, or all when it names executors (the first woken might not be named). */
  private wakeFor(process: Process): void {
    const { colonyname, executortype, executornames } = process.spec.conditions;
    this.options.store.notifyWork(
      colonyname,
      executortype,
      executornames.length ? Number.POSITIVE_INFINITY : 1,
    );
  }

  /**
   * Long-poll assignment: the first assignable process, else wait for one to be submitted
   * (one waiter woken per new process, on whichever service replica it waits) until
   * `timeout` seconds; then 404. A caller that
   * leaves (`signal`) stops waiting; a process taken for it is given back.
   */
  private async assign(
    caller: string,
    colonyname: string,
    timeoutS: number,
    signal: AbortSignal | undefined,
  ): Promise<Process> {
    if (timeoutS === 0) throw new RpcError(400, "timeout must not be 0");
    const { executor } = await this.member(caller, colonyname);
    if (!executor) throw new RpcError(403, "only an executor of the colony is assigned processes");
    // heard from: recorded at most every few seconds, not as a write on every assign
    if (Date.now() - (timeMs(executor.lastheardfromtime) ?? 0) > HEARD_FROM_RESOLUTION_MS)
      await this.options.store.updateExecutor({ ...executor, lastheardfromtime: timeString(Date.now()) });
    const deadline = Date.now() + Math.max(0, timeoutS) * 1000;
    for (;;) {
      if (signal?.aborted) throw gone();
      const seen = this.options.store.workSeen(colonyname, executor.executortype);
      const process = await this.options.store.assign(
        {
          colonyname,
          executorid: executor.executorid,
          executorname: executor.executorname,
          executortype: executor.executortype,
        },
        (p) => started(p, executor.executorid, Date.now()),
      );
      if (process) return this.handOver(await this.withInput(process), signal);
      const left = deadline - Date.now();
      if (timeoutS < 0 || left <= 0) throw new RpcError(404, "No process available for assignment");
      const woken = await this.options.store.waitForWork(colonyname, executor.executortype, {
        timeoutMs: left,
        seen,
        signal,
      });
      if (!woken && signal?.aborted) throw gone();
      if (!woken) throw new RpcError(404, "No process available for assignment");
    }
  }

  /**
   * A process just taken for an executor, handed to the transport: given back at once when
   * the caller already left, or later if the answer never reaches it (`signal` aborts).
   */
  private handOver(process: Process, signal: AbortSignal | undefined): Process {
    this.changes.emit("process", process);
    if (signal?.aborted) {
      void this.giveBack(process);
      throw gone();
    }
    signal?.addEventListener("abort", () => void this.giveBack(process), { once: true });
    return process;
  }

  /** Undoes an assignment its executor never received (not a retry: it never ran). */
  private async giveBack(assigned: Process): Promise<void> {
    try {
      const back = await this.options.store.release(
        {
          processid: assigned.processid,
          executorid: assigned.assignedexecutorid,
          starttime: assigned.starttime,
        },
        givenBack,
      );
      if (!back) return; // closed, timed out or cancelled meanwhile: nothing to give back
      this.changes.emit("process", back);
      this.wakeFor(back);
    } catch {
      // the store failed: the process's maxexectime, when it has one, still brings it back
    }
  }

  /** A workflow child's input: its parents' outputs, concatenated in parent order. */
  private async withInput(process: Process): Promise<Process> {
    if (process.parents.length === 0) return process;
    const parents = await this.options.store.getProcesses(process.parents);
    const input = parents.flatMap((p) => p.out);
    const updated = { ...process, in: input };
    await this.options.store.updateProcesses([updated]);
    return updated;
  }

  private async closeSuccessful(caller: string, processid: string, out: unknown[]): Promise<object> {
    const process = await this.assignedTo(caller, processid);
    if (process.state === WAITING || process.state === FAILED || process.state === CANCELLED)
      throw new RpcError(400, `the process is ${stateName(process.state)}: it cannot succeed`);
    const closed: Process = {
      ...process,
      state: SUCCESS,
      out: out.length ? out : process.out,
      endtime: timeString(Date.now()),
      execdeadline: ZERO_TIME,
    };
    await this.save([closed]);
    if (closed.processgraphid) await this.resolveGraph(closed.processgraphid);
    return {};
  }

  private async closeFailed(caller: string, processid: string, errors: string[]): Promise<object> {
    const process = await this.assignedTo(caller, processid);
    if (process.state === SUCCESS || process.state === FAILED || process.state === CANCELLED)
      throw new RpcError(400, `the process is ${stateName(process.state)} already`);
    await this.fail(process, errors);
    return {};
  }

  private async fail(process: Process, errors: string[]): Promise<void> {
    const failed: Process = {
      ...process,
      state: FAILED,
      errors,
      endtime: timeString(Date.now()),
      execdeadline: ZERO_TIME,
    };
    await this.save([failed]);
    if (failed.processgraphid) await this.resolveGraph(failed.processgraphid);
  }

  private async setOutput(caller: string, processid: string, out: unknown[]): Promise<object> {
    const process = await this.assignedTo(caller, processid);
    if (process.state !== RUNNING) throw new RpcError(400, "output is set while the process runs");
    await this.save([{ ...process, out }]);
    return {};
  }

  private async listProcesses(caller: string, m: Message<"getprocessesmsg">): Promise<Process[]> {
    await this.member(caller, m.colonyname);
    if (m.count > MAX_COUNT) throw new RpcError(400, `count is at most ${MAX_COUNT}`);
    return this.options.store.listProcesses({
      colonyname: m.colonyname,
      state: stateOf(m.state),
      count: m.count,
      ...(m.executortype ? { executortype: m.executortype } : {}),
      ...(m.label ? { label: m.label } : {}),
    });
  }

  private async removeProcess(caller: string, processid: string): Promise<object> {
    const process = await this.readableProcess(caller, processid);
    if (process.processgraphid)
      throw new RpcError(400, "the process belongs to a workflow: remove the workflow");
    await this.options.store.removeProcess(processid);
    return {};
  }

  /**
   * Cancels a waiting or running process: CANCELLED, never assigned again; its executor's
   * close is refused. A workflow's process is cancelled with its whole workflow.
   */
  private async cancelProcess(caller: string, processid: string): Promise<object> {
    const process = await this.readableProcess(caller, processid);
    if (finished(process.state))
      throw new RpcError(400, `the process is ${stateName(process.state)} already`);
    if (process.processgraphid) return this.cancelGraph(caller, process.processgraphid);
    await this.save([cancelled(process, Date.now())]);
    return {};
  }

  /** Cancels every unfinished process of a workflow; the workflow becomes CANCELLED. */
  private async cancelGraph(caller: string, graphId: string): Promise<object> {
    const graph = await this.readableGraph(caller, graphId);
    if (finished(graph.state)) throw new RpcError(400, `the workflow is ${stateName(graph.state)} already`);
    const processes = await this.options.store.getProcesses(graph.processids);
    const now = Date.now();
    await this.save(processes.filter((p) => !finished(p.state)).map((p) => cancelled(p, now)));
    await this.resolveGraph(graphId);
    return {};
  }

  // ---- workflows

  private async submitWorkflow(
    caller: string,
    workflow: Message<"submitworkflowspecmsg">["spec"],
  ): Promise<ProcessGraph> {
    const { colonyname } = workflow;
    const who = await this.member(caller, colonyname);
    const specs = workflow.functionspecs.map((given) => {
      // the workflow's colony is every spec's (as ColonyOS does)
      const spec = specOf(given, colonyname);
      if (spec.maxexectime === 0) spec.maxexectime = -1;
      return spec;
    });
    if (specs.length === 0) throw new RpcError(400, "a workflow needs function specs");
    const byName = new Map<string, Process>();
    const graphId = newId();
    const now = Date.now();
    for (const spec of specs) {
      if (!spec.nodename) throw new RpcError(400, "Nodename is missing in a function spec of the workflow");
      if (byName.has(spec.nodename)) throw new RpcError(400, `Duplicate nodename ${spec.nodename}`);
      byName.set(
        spec.nodename,
        newProcess(spec, { id: caller, name: who.name }, now, {
          id: graphId,
          waitforparents: spec.conditions.dependencies.length > 0,
        }),
      );
    }
    for (const process of byName.values()) {
      for (const dependency of process.spec.conditions.dependencies) {
        const parent = byName.get(dependency);
        if (!parent)
          throw new RpcError(
            400,
            `${process.spec.nodename} depends on ${dependency}, which is not in the workflow`,
          );
        process.parents.push(parent.processid);
        parent.children.push(process.processid);
      }
    }
    const processes = [...byName.values()];
    rejectCycles(processes);
    const graph: ProcessGraph = {
      processgraphid: graphId,
      initiatorid: caller,
      initiatorname: who.name,
      colonyname,
      rootprocessids: processes.filter((p) => p.parents.length === 0).map((p) => p.processid),
      state: WAITING,
      submissiontime: timeString(now),
      starttime: ZERO_TIME,
      endtime: ZERO_TIME,
      processids: processes.map((p) => p.processid),
      nodes: [],
      edges: [],
    };
    await this.insert(processes, graph);
    for (const root of processes.filter((p) => !p.waitforparents)) this.wakeFor(root);
    return graph;
  }

  /**
   * A running process adds a child to its graph (map/reduce): after the parent (or, with
   * `insert`, between the parent and its children).
   */
  private async addChild(caller: string, m: Message<"addchildmsg">): Promise<Process> {
    const parent = await this.assignedTo(caller, m.parentprocessid);
    const graphId = m.processgraphid;
    if (parent.state !== RUNNING || parent.processgraphid !== graphId)
      throw new RpcError(400, "children are added by a running process of the graph");
    const graph = await this.options.store.getGraph(graphId);
    if (!graph) throw notFound("process graph");
    const spec = specOf(m.spec, graph.colonyname);
    const child = newProcess(spec, { id: caller, name: parent.spec.conditions.executortype }, Date.now(), {
      id: graphId,
      waitforparents: true,
    });
    child.parents = [parent.processid];
    const changed: Process[] = [];
    if (m.insert) {
      child.children = parent.children;
      for (const old of await this.options.store.getProcesses(parent.children)) {
        changed.push({
          ...old,
          parents: [...old.parents.filter((id) => id !== parent.processid), child.processid],
        });
      }
      changed.push({ ...parent, children: [child.processid] });
    } else {
      changed.push({ ...parent, children: [...parent.children, child.processid] });
      if (m.childprocessid) {
        const next = await this.options.store.getProcess(m.childprocessid);
        if (!next || next.processgraphid !== graphId) throw notFound("child process");
        child.children = [m.childprocessid];
        changed.push({ ...next, parents: [...next.parents, child.processid], waitforparents: true });
      }
    }
    await this.insert([child]);
    await this.save(changed);
    await this.options.store.updateGraph({ ...graph, processids: [...graph.processids, child.processid] });
    return child;
  }

  /**
   * After a close: children whose parents all succeeded become assignable (and wake an
   * executor each); a failure fails every unfinished process of the graph; the graph's
   * state follows its processes'.
   */
  private async resolveGraph(graphId: string): Promise<void> {
    const graph = await this.options.store.getGraph(graphId);
    if (!graph) return;
    const processes = await this.options.store.getProcesses(graph.processids);
    const byId = new Map(processes.map((p) => [p.processid, p]));
    const failed = processes.some((p) => p.state === FAILED);
    // a failure fails, a cancellation cancels, every process of the graph not finished yet
    const ending = failed ? FAILED : processes.some((p) => p.state === CANCELLED) ? CANCELLED : undefined;
    const changed: Process[] = [];
    const now = timeString(Date.now());
    for (const process of processes) {
      if (ending !== undefined && !finished(process.state)) {
        changed.push({ ...process, state: ending, endtime: now, execdeadline: ZERO_TIME });
      } else if (
        ending === undefined &&
        process.waitforparents &&
        process.parents.every((id) => byId.get(id)?.state === SUCCESS)
      ) {
        changed.push({ ...process, waitforparents: false });
      }
    }
    if (changed.length) await this.save(changed);
    for (const p of changed) byId.set(p.processid, p);
    const states = [...byId.values()].map((p) => p.state);
    const state: ProcessState = states.includes(FAILED)
      ? FAILED
      : states.includes(CANCELLED)
        ? CANCELLED
        : states.every((s) => s === SUCCESS)
          ? SUCCESS
          : states.some((s) => s === SUCCESS || s === RUNNING)
            ? RUNNING
            : WAITING;
    await this.options.store.updateGraph({
      ...graph,
      state,
      ...(graph.starttime === ZERO_TIME && state !== WAITING ? { starttime: now } : {}),
      ...(finished(state) ? { endtime: now } : {}),
    });
    for (const p of changed) {
      if (!p.waitforparents && p.state === WAITING)
        this.options.store.notifyWork(graph.colonyname, p.spec.conditions.executortype, 1);
    }
  }

  private async listGraphs(caller: string, m: Message<"getprocessgraphsmsg">): Promise<ProcessGraph[]> {
    await this.member(caller, m.colonyname);
    if (m.count > MAX_COUNT) throw new RpcError(400, `count is at most ${MAX_COUNT}`);
    return this.options.store.listGraphs({
      colonyname: m.colonyname,
      state: stateOf(m.state),
      count: m.count,
    });
  }

  private async readableGraph(caller: string, id: string): Promise<ProcessGraph> {
    const graph = await this.options.store.getGraph(id);
    if (!graph) throw notFound("process graph");
    await this.member(caller, graph.colonyname);
    return graph;
  }

  // ---- users, attributes, registered functions

  /**
   * The colony owner adds a user. Its id must be new to the whole server (as ColonyOS):
   * a user of another colony is never moved or replaced.
   */
  private async addUser(caller: string, u: Message<"addusermsg">["user"]): Promise<User> {
    await this.colonyOwner(caller, u.colonyname);
    const user: User = {
      colonyname: u.colonyname,
      userid: u.userid,
      name: u.name,
      email: u.email,
      phone: u.phone,
    };
    if (!HEX_ID.test(user.userid)) throw new RpcError(400, "user id must be 64 hex characters");
    if (!user.name) throw new RpcError(400, "a user needs a name");
    const users = await this.options.store.listObjects<User>("user", u.colonyname);
    if (users.some((other) => other.name === user.name))
      throw new RpcError(
        400,
        `A user with name <${user.name}> already exists in Colony with name <${u.colonyname}>`,
      );
    const taken = () => new RpcError(400, `A user with Id <${user.userid}> already exists`);
    if (await this.options.store.getObject<User>("user", user.userid)) throw taken();
    if (!(await this.options.store.putObject("user", user.userid, u.colonyname, user))) throw taken();
    return user;
  }

  private async user(caller: string, colonyname: string, name: string): Promise<User> {
    await this.member(caller, colonyname, { approved: false });
    const user = (await this.options.store.listObjects<User>("user", colonyname)).find(
      (u) => u.name === name,
    );
    if (!user) throw notFound("user");
    return user;
  }

  /** An attribute of a running process, set by its executor; it also shows in the process's `attributes`. */
  private async addAttribute(caller: string, a: Message<"addattributemsg">["attribute"]): Promise<Attribute> {
    const process = await this.assignedTo(caller, a.targetid);
    if (process.state !== RUNNING) throw new RpcError(400, "attributes are added while the process runs");
    const attribute: Attribute = {
      attributeid: sha3Hex(`${process.processid}${a.key}${a.attributetype}`),
      targetid: process.processid,
      targetcolonyname: process.spec.conditions.colonyname,
      targetprocessgraphid: process.processgraphid,
      state: process.state,
      attributetype: a.attributetype,
      key: a.key,
      value: a.value,
    };
    const put = await this.options.store.putObject(
      "attribute",
      attribute.attributeid,
      attribute.targetcolonyname,
      attribute,
    );
    if (!put) throw new RpcError(400, "the attribute id is taken");
    const others = (process.attributes as Attribute[]).filter((x) => x.attributeid !== attribute.attributeid);
    await this.save([{ ...process, attributes: [...others, attribute] }]);
    return attribute;
  }

  /**
   * An executor registers a function it runs (for discovery: `getfunctionsmsg`). It may
   * register again under the same id; an id another colony's or executor's function holds
   * is refused.
   */
  private async addFunction(
    caller: string,
    f: Message<"addfunctionmsg">["fun"],
  ): Promise<RegisteredFunction> {
    const { executor } = await this.member(caller, f.colonyname);
    if (!executor || executor.executorname !== f.executorname)
      throw new RpcError(403, "Access denied, an executor adds its own functions");
    const fn: RegisteredFunction = {
      functionid: f.functionid || newId(),
      executorname: executor.executorname,
      executortype: executor.executortype,
      colonyname: f.colonyname,
      funcname: f.funcname,
      description: f.description,
      args: f.args,
      counter: 0,
      minwaittime: 0,
      maxwaittime: 0,
      minexectime: 0,
      maxexectime: 0,
      avgwaittime: 0,
      avgexectime: 0,
    };
    if (!fn.funcname) throw new RpcError(400, "a function needs funcname");
    if (!(await this.options.store.putObject("function", fn.functionid, f.colonyname, fn)))
      throw new RpcError(400, `A function with Id <${fn.functionid}> already exists`);
    return fn;
  }

  // ---- logs and statistics

  private async addLog(caller: string, processid: string, message: string): Promise<object> {
    const process = await this.assignedTo(caller, processid);
    if (process.state !== RUNNING) throw new RpcError(400, "logs are added while the process runs");
    const executor = await this.options.store.getExecutorById(caller);
    await this.options.store.addLog({
      processid,
      colonyname: process.spec.conditions.colonyname,
      executorname: executor?.executorname ?? "",
      message,
      timestamp: Date.now() * 1_000_000,
    });
    return {};
  }

  /**
   * A process's logs, to members of the process's colony (as ColonyOS: the colony the
   * message names is not what is checked). Logs by executor are not kept here.
   */
  private async getLogs(caller: string, m: Message<"getlogsmsg">): Promise<unknown[]> {
    await this.readableProcess(caller, m.processid);
    if (m.count > MAX_LOG_COUNT) throw new RpcError(403, `Count exceeds max log count (${MAX_LOG_COUNT})`);
    return this.options.store.getLogs({ processid: m.processid, count: m.count, since: m.since });
  }

  private async colonyStatistics(caller: string, colonyname: string): Promise<Record<string, number>> {
    await this.member(caller, colonyname);
    const { processes, graphs } = await this.options.store.countByState(colonyname);
    const executors = await this.options.store.listExecutors(colonyname);
    return {
      colonies: 1,
      executors: executors.length,
      activeexecutors: executors.filter((e) => e.state === APPROVED).length,
      unregisteredexecutors: 0,
      waitingprocesses: processes[WAITING] ?? 0,
      runningprocesses: processes[RUNNING] ?? 0,
      successfulprocesses: processes[SUCCESS] ?? 0,
      failedprocesses: processes[FAILED] ?? 0,
      cancelledprocesses: processes[CANCELLED] ?? 0,
      waitingworkflows: graphs[WAITING] ?? 0,
      runningworkflows: graphs[RUNNING] ?? 0,
      successfulworkflows: graphs[SUCCESS] ?? 0,
      failedworkflows: graphs[FAILED] ?? 0,
      cancelledworkflows: graphs[CANCELLED] ?? 0,
    };
  }

  // ---- deadlines

  /**
   * Past maxexectime, a running process goes back to WAITING with one more retry, until
   * maxretries, then FAILED; past maxwaittime, a waiting process FAILED.
   */
  async enforceDeadlines(now = Date.now()): Promise<void> {
    await this.serial.run(async () => {
      const { running, waiting } = await this.options.store.pastDeadlines(now);
      for (const process of running) {
        const spec = process.spec;
        if (spec.maxretries > -1 && process.retries >= spec.maxretries) {
          await this.fail(process, ["Maximum execution time limit exceeded"]);
          continue;
        }
        await this.save([
          {
            ...process,
            state: WAITING,
            isassigned: false,
            assignedexecutorid: "",
            retries: process.retries + 1,
            endtime: timeString(now),
            execdeadline: ZERO_TIME,
            waitdeadline: spec.maxwaittime > 0 ? timeString(now + spec.maxwaittime * 1000) : ZERO_TIME,
          },
        ]);
        this.options.store.notifyWork(spec.conditions.colonyname, spec.conditions.executortype, 1);
      }
      for (const process of waiting) await this.fail(process, ["Maximum waiting time limit exceeded"]);
    });
  }

  // ---- subscriptions (WebSocket /pubsub)

  /**
   * A subscription: `subscribeprocessmsg` pushes the process each time it is in `state`
   * (at once when it already is), matched by process id whatever executor type the client
   * sends; `subscribeprocessesmsg` pushes every process of the caller's colony, executor
   * type and state. Returns how to end it; it ends by itself after `timeout` seconds.
   */
  async subscribe(
    call: Call,
    pushFrame: (payloadtype: string, payload: unknown) => void,
    ended: () => void,
  ): Promise<() => void> {
    const parsed = parseMessage(call.msgtype, call.message);
    const caller = call.callerId ?? "";
    if (parsed.msgtype === "subscribechannelmsg") {
      const m = parsed.message;
      const process = await this.channelProcess(caller, m.processid, m.name, "read");
      return this.channels.subscribe(
        process,
        m.name,
        m.afterseq,
        m.timeout > 0 ? m.timeout : DEFAULT_CHANNEL_SUBSCRIPTION_S,
        (entries) => pushFrame("subscribechannelmsg", entries),
        ended,
      );
    }
    // ColonyOS sends both kinds of process frames as subscribeprocessmsg
    const push = (process: Process) => pushFrame("subscribeprocessmsg", process);
    let matches: (p: Process) => boolean;
    let timeoutS: number;
    if (parsed.msgtype === "subscribeprocessmsg") {
      const state = stateOf(parsed.message.state);
      const process = await this.readableProcess(caller, parsed.message.processid);
      matches = (p) => p.processid === process.processid && p.state === state;
      timeoutS = parsed.message.timeout;
      if (matches(process)) push(process);
    } else if (parsed.msgtype === "subscribeprocessesmsg") {
      const { colonyname, executortype } = parsed.message;
      const state = stateOf(parsed.message.state);
      const { executor } = await this.member(caller, colonyname);
      if (!executor) throw new RpcError(403, "only an executor of the colony subscribes to its processes");
      matches = (p) =>
        p.spec.conditions.colonyname === colonyname &&
        p.spec.conditions.executortype === executortype &&
        p.state === state;
      timeoutS = parsed.message.timeout;
    } else {
      throw new RpcError(400, `${parsed.msgtype} is not a subscription`);
    }
    const listener = (p: Process) => {
      if (matches(p)) push(p);
    };
    this.changes.on("process", listener);
    const lifetimeMs = timerDelay((timeoutS > 0 ? timeoutS : DEFAULT_SUBSCRIPTION_S) * 1000);
    const timer = setTimeout(() => {
      stop();
      ended();
    }, lifetimeMs);
    timer.unref();
    const stop = () => {
      clearTimeout(timer);
      this.changes.off("process", listener);
    };
    return stop;
  }

  /** Stores new processes and tells subscribers. */
  private async insert(processes: readonly Process[], graph?: ProcessGraph): Promise<void> {
    await this.options.store.addProcesses(processes, graph);
    for (const p of processes) this.changes.emit("process", p);
  }

  /** Stores changed processes and tells subscribers. */
  private async save(processes: readonly Process[]): Promise<void> {
    await this.options.store.updateProcesses(processes);
    for (const p of processes) this.changes.emit("process", p);
  }

  // ---- who may do what

  private requireServerOwner(caller: string): void {
    if (caller !== this.options.serverId) throw new RpcError(403, "Access denied, not server owner");
  }

  private async colonyOwner(caller: string, colonyname: string): Promise<Colony> {
    const colony = await this.options.store.getColony(colonyname);
    if (!colony) throw new RpcError(400, `Colony with name ${colonyname} does not exist`);
    if (colony.colonyid !== caller) throw new RpcError(403, "Access denied, not colony owner");
    return colony;
  }

  /**
   * The caller as a member of the colony: its owner, or one of its users, or one of its
   * executors (approved, unless `approved: false`).
   */
  private async member(
    caller: string,
    colonyname: string,
    options: { approved?: boolean } = {},
  ): Promise<{ colony: Colony; executor: Executor | undefined; name: string }> {
    const { colony, user, executor } = await this.options.store.membership(colonyname, caller);
    if (!colony) throw new RpcError(400, `Colony with name ${colonyname} does not exist`);
    if (colony.colonyid === caller) return { colony, executor: undefined, name: colony.name };
    if (user?.colonyname === colonyname) return { colony, executor: undefined, name: user.name };
    if (!executor || executor.colonyname !== colonyname)
      throw new RpcError(403, `Access denied, not a member of Colony with name ${colonyname}`);
    if (options.approved !== false && executor.state !== APPROVED)
      throw new RpcError(403, `Access denied, executor ${executor.executorname} is not approved`);
    return { colony, executor, name: executor.executorname };
  }

  /** A process, to members of its colony (403 otherwise, as ColonyOS; 404 when there is none). */
  private async readableProcess(caller: string, processid: string): Promise<Process> {
    const process = await this.options.store.getProcess(processid);
    if (!process) throw notFound("process");
    await this.member(caller, process.spec.conditions.colonyname);
    return process;
  }

  /** A process the caller runs: its assigned executor, still an approved member of its colony. */
  private async assignedTo(caller: string, processid: string): Promise<Process> {
    const process = await this.readableProcess(caller, processid);
    if (!process.assignedexecutorid || process.assignedexecutorid !== caller)
      throw new RpcError(403, "Access denied, not the executor assigned to the process");
    return process;
  }

  /** The process whose channel the caller reads or writes, checked (§3.5 of the protocol notes). */
  private async channelProcess(
    caller: string,
    processid: string,
    name: string,
    what: "read" | "write",
  ): Promise<Process> {
    const process = await this.readableProcess(caller, processid);
    ChannelHub.check(process, name, caller, what);
    return process;
  }
}

/**
 * A function spec with every field present, its colony (`colonyname`, when given,
 * overrides the spec's: a workflow's processes are in the workflow's colony) and
 * executor type given.
 */
function specOf(input: FunctionSpecInput, colonyname?: string): FunctionSpec {
  // fs is passed through as sent (ColonyOS' snapshot and directory shapes vary by version)
  const spec = completeSpec({ ...input, fs: input.fs as FunctionSpec["fs"] | undefined });
  if (colonyname !== undefined) spec.conditions.colonyname = colonyname;
  if (!spec.conditions.colonyname) throw new RpcError(400, "spec.conditions.colonyname is missing");
  if (!spec.conditions.executortype) throw new RpcError(400, "spec.conditions.executortype is missing");
  return spec;
}

function capabilitiesOf(input: Record<string, unknown> | undefined): Executor["capabilities"] {
  // older clients send single objects, newer ones arrays
  const asList = (v: unknown) => (Array.isArray(v) ? v : v ? [v] : []);
  return { hardware: asList(input?.hardware), software: asList(input?.software) };
}

function notFound(what: string): RpcError {
  return new RpcError(404, `the ${what} does not exist`);
}

/** The caller left: nobody reads this answer. */
function gone(): RpcError {
  return new RpcError(400, "the caller is gone");
}

function conflict(message: string): (err: unknown) => never {
  return (err: unknown) => {
    if (err instanceof ConflictError) throw new RpcError(400, message);
    throw err;
  };
}
