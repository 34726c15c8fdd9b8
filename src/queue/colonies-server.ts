import { EventEmitter } from "node:events";
import { ConflictError } from "../errors.js";
import { AssignWaiters } from "./assign-waiters.js";
import { RpcError } from "./envelope.js";
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
import { ChannelHub } from "./channels.js";
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
import type { QueueStore } from "./queue-store.js";
import { SerialQueue } from "./serial-queue.js";
import { timerDelay } from "../util/deadline.js";

/** A request the server answers: its message and who signed it. */
export interface Call {
  msgtype: string;
  callerId: string | undefined;
  message: Record<string, unknown>;
}

export interface ColoniesServerOptions {
  store: QueueStore;
  /** The server owner's id (`idOf` of its private key): it adds and removes colonies. */
  serverId: string;
  /** How often deadlines are checked; default 1 s (as ColonyOS). */
  deadlineCheckMs?: number;
}

const MAX_COUNT = 100;
/** How stale an executor's `lastheardfromtime` may be before an assign call records it again. */
const HEARD_FROM_RESOLUTION_MS = 5_000;
const BUILD = { buildversion: "affinetes", buildtime: "" };

/**
 * The process queue on the ColonyOS protocol: colonies, executors, processes with
 * atomic long-poll assignment, deadlines and retries, and workflows (DAGs with dynamic
 * children). Answers decoded, verified calls; `RpcError` carries the HTTP status.
 */
export class ColoniesServer {
  private readonly waiters = new AssignWaiters();
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

  /** Starts the deadline loop (maxwaittime, maxexectime and retries). */
  start(): void {
    this.timer ??= setInterval(
      () => void this.enforceDeadlines().catch(() => undefined),
      this.options.deadlineCheckMs ?? 1000,
    );
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.waiters.cancelAll();
  }

  /** Answers one call; the reply payload (JSON). */
  async handle(call: Call): Promise<unknown> {
    const m = call.message;
    const caller = call.callerId ?? "";
    switch (call.msgtype) {
      case "versionmsg":
        return { ...BUILD, msgtype: "versionmsg" };
      case "addcolonymsg":
        return this.addColony(caller, m.colony);
      case "getcoloniesmsg":
        this.requireServerOwner(caller);
        return this.options.store.listColonies();
      case "getcolonymsg":
        return (await this.member(caller, str(m, "colonyname"))).colony;
      case "removecolonymsg":
        this.requireServerOwner(caller);
        if (!(await this.options.store.removeColony(str(m, "colonyname")))) throw notFound("colony");
        return {};
      case "addexecutormsg":
        return this.addExecutor(caller, m.executor);
      case "approveexecutormsg":
      case "rejectexecutormsg":
        return this.setExecutorState(caller, m, call.msgtype === "approveexecutormsg" ? APPROVED : REJECTED);
      case "removeexecutormsg":
        await this.colonyOwner(caller, str(m, "colonyname"));
        if (!(await this.options.store.removeExecutor(str(m, "colonyname"), str(m, "executorname"))))
          throw notFound("executor");
        return {};
      case "getexecutorsmsg":
        await this.member(caller, str(m, "colonyname"), { approved: false });
        return this.options.store.listExecutors(str(m, "colonyname"));
      case "getexecutormsg": {
        await this.member(caller, str(m, "colonyname"));
        const executor = await this.options.store.getExecutor(str(m, "colonyname"), str(m, "executorname"));
        if (!executor) throw notFound("executor");
        return executor;
      }
      case "submitfuncspecmsg":
        return this.submit(caller, m.spec);
      case "assignprocessmsg":
        return this.assign(caller, str(m, "colonyname"), num(m, "timeout"));
      case "getprocessmsg":
        return this.readableProcess(caller, str(m, "processid"));
      case "getprocessesmsg":
        return this.listProcesses(caller, m);
      case "removeprocessmsg":
        return this.removeProcess(caller, str(m, "processid"));
      case "removeallprocessesmsg": {
        const colonyname = str(m, "colonyname");
        await this.colonyOwner(caller, colonyname);
        const state = m.state ?? -1;
        if (state === RUNNING) throw new RpcError(400, "running processes are not removed: cancel them");
        await this.options.store.removeProcesses({
          colonyname,
          ...(state === -1 ? {} : { state: stateOf(state) }),
        });
        return {};
      }
      case "cancelprocessmsg":
        return this.serial.run(() => this.cancelProcess(caller, str(m, "processid")));
      case "cancelprocessgraphmsg":
        return this.serial.run(() => this.cancelGraph(caller, str(m, "processgraphid")));
      case "closesuccessfulmsg":
        return this.serial.run(() => this.closeSuccessful(caller, str(m, "processid"), list(m, "out")));
      case "closefailedmsg":
        return this.serial.run(() =>
          this.closeFailed(caller, str(m, "processid"), list(m, "errors").map(String)),
        );
      case "setoutputmsg":
        return this.serial.run(() => this.setOutput(caller, str(m, "processid"), list(m, "out")));
      case "submitworkflowspecmsg":
        return this.submitWorkflow(caller, m.spec);
      case "getprocessgraphmsg":
        return this.readableGraph(caller, str(m, "processgraphid"));
      case "getprocessgraphsmsg":
        return this.listGraphs(caller, m);
      case "removeprocessgraphmsg": {
        const graph = await this.readableGraph(caller, str(m, "processgraphid"));
        if (graph.state === RUNNING) throw new RpcError(400, "the workflow is running: cancel it first");
        await this.options.store.removeGraphs({ processgraphid: graph.processgraphid });
        return {};
      }
      case "removeallprocessgraphsmsg": {
        const colonyname = str(m, "colonyname");
        await this.colonyOwner(caller, colonyname);
        const state = m.state ?? -1;
        if (state === RUNNING) throw new RpcError(400, "running workflows are not removed: cancel them");
        await this.options.store.removeGraphs({
          colonyname,
          ...(state === -1 ? {} : { state: stateOf(state) }),
        });
        return {};
      }
      case "channelappendmsg": {
        const process = await this.channelProcess(caller, m, "write");
        await this.channels.append(process, str(m, "name"), caller, m);
        return {};
      }
      case "channelreadmsg": {
        const process = await this.channelProcess(caller, m, "read");
        return this.channels.read(process, str(m, "name"), num(m, "afterseq"), num(m, "limit"));
      }
      case "addchildmsg":
        return this.serial.run(() => this.addChild(caller, m));
      case "addlogmsg":
        return this.addLog(caller, str(m, "processid"), str(m, "message"));
      case "getlogsmsg":
        return this.getLogs(caller, m);
      case "getcolonystatsmsg":
        return this.colonyStatistics(caller, str(m, "colonyname"));
      case "getexecutorbyidmsg": {
        await this.member(caller, str(m, "colonyname"));
        const executor = await this.options.store.getExecutorById(str(m, "executorid"));
        if (!executor || executor.colonyname !== str(m, "colonyname")) throw notFound("executor");
        return executor;
      }
      case "addusermsg":
        return this.addUser(caller, m.user);
      case "getusersmsg":
        await this.member(caller, str(m, "colonyname"), { approved: false });
        return this.options.store.listObjects("user", str(m, "colonyname"));
      case "getusermsg":
        return this.user(caller, str(m, "colonyname"), str(m, "name"));
      case "removeusermsg": {
        await this.colonyOwner(caller, str(m, "colonyname"));
        const user = await this.user(caller, str(m, "colonyname"), str(m, "name"));
        await this.options.store.deleteObject("user", user.userid);
        return {};
      }
      case "addattributemsg":
        return this.serial.run(() => this.addAttribute(caller, m.attribute));
      case "getattributemsg": {
        const attribute = await this.options.store.getObject<Attribute>("attribute", str(m, "attributeid"));
        if (!attribute) throw notFound("attribute");
        await this.member(caller, attribute.targetcolonyname);
        return attribute;
      }
      case "addfunctionmsg":
        return this.addFunction(caller, m.fun);
      case "getfunctionsmsg": {
        const colonyname = str(m, "colonyname");
        await this.member(caller, colonyname);
        const executorname = str(m, "executorname");
        const all = await this.options.store.listObjects<RegisteredFunction>("function", colonyname);
        return executorname ? all.filter((f) => f.executorname === executorname) : all;
      }
      case "removefunctionmsg": {
        const fn = await this.options.store.getObject<RegisteredFunction>("function", str(m, "functionid"));
        if (!fn) throw notFound("function");
        const { executor } = await this.member(caller, fn.colonyname);
        if (executor?.executorname !== fn.executorname)
          throw new RpcError(403, "Access denied, only the executor that added a function removes it");
        await this.options.store.deleteObject("function", fn.functionid);
        return {};
      }
      default:
        throw new RpcError(403, `invalid rpcMsg.PayloadType, ${call.msgtype}`);
    }
  }

  // ---- colonies and executors

  private async addColony(caller: string, input: unknown): Promise<Colony> {
    this.requireServerOwner(caller);
    const colony = object(input, "colony");
    const id = str(colony, "colonyid");
    const name = str(colony, "name");
    if (!/^[0-9a-f]{64}$/.test(id)) throw new RpcError(400, "colony id must be 64 hex characters");
    if (!name) throw new RpcError(400, "colony name is missing");
    const record = { colonyid: id, name };
    await this.options.store.addColony(record).catch(conflict(`a colony named ${name} exists already`));
    return record;
  }

  private async addExecutor(caller: string, input: unknown): Promise<Executor> {
    const e = object(input, "executor");
    const colonyname = str(e, "colonyname");
    await this.colonyOwner(caller, colonyname);
    const now = timeString(Date.now());
    const executor: Executor = {
      executorid: str(e, "executorid"),
      executortype: str(e, "executortype"),
      executorname: str(e, "executorname"),
      colonyname,
      state: PENDING,
      requirefuncreg: e.requirefuncreg === true,
      commissiontime: now,
      lastheardfromtime: now,
      location: { long: 0, lat: 0, name: "", desc: "", ...(e.location as object | undefined) },
      capabilities: capabilitiesOf(e.capabilities),
      allocations: { projects: {} },
    };
    if (!/^[0-9a-f]{64}$/.test(executor.executorid))
      throw new RpcError(400, "executor id must be 64 hex characters");
    if (!executor.executorname || !executor.executortype)
      throw new RpcError(400, "an executor needs executorname and executortype");
    await this.options.store
      .addExecutor(executor)
      .catch(conflict(`an executor named ${executor.executorname} exists in colony ${colonyname}`));
    return executor;
  }

  private async setExecutorState(caller: string, m: Record<string, unknown>, state: number): Promise<object> {
    const colonyname = str(m, "colonyname");
    await this.colonyOwner(caller, colonyname);
    const executor = await this.options.store.getExecutor(colonyname, str(m, "executorname"));
    if (!executor) throw notFound("executor");
    await this.options.store.updateExecutor({ ...executor, state });
    return {};
  }

  // ---- processes

  private async submit(caller: string, input: unknown): Promise<Process> {
    const spec = this.specOf(input);
    const who = await this.member(caller, spec.conditions.colonyname);
    const process = newProcess(spec, { id: caller, name: who.name }, Date.now());
    await this.insert([process]);
    // a process for named executors wakes them all: the one woken first might not be named
    const wake = spec.conditions.executornames.length ? Number.POSITIVE_INFINITY : 1;
    this.waiters.wake(spec.conditions.colonyname, spec.conditions.executortype, wake);
    return process;
  }

  /**
   * Long-poll assignment: the first assignable process, else wait for one to be submitted
   * (one waiter woken per new process) until `timeout` seconds; then 404.
   */
  private async assign(caller: string, colonyname: string, timeoutS: number): Promise<Process> {
    if (timeoutS === 0) throw new RpcError(400, "timeout must not be 0");
    const { executor } = await this.member(caller, colonyname);
    if (!executor) throw new RpcError(403, "only an executor of the colony is assigned processes");
    // heard from: recorded at most every few seconds, not as a write on every assign
    if (Date.now() - (timeMs(executor.lastheardfromtime) ?? 0) > HEARD_FROM_RESOLUTION_MS)
      await this.options.store.updateExecutor({ ...executor, lastheardfromtime: timeString(Date.now()) });
    const deadline = Date.now() + Math.max(0, timeoutS) * 1000;
    for (;;) {
      const seen = this.waiters.seen(colonyname, executor.executortype);
      const process = await this.options.store.assign(
        {
          colonyname,
          executorid: executor.executorid,
          executorname: executor.executorname,
          executortype: executor.executortype,
        },
        (p) => started(p, executor.executorid, Date.now()),
      );
      if (process) {
        const withInput = await this.withInput(process);
        this.changes.emit("process", withInput);
        return withInput;
      }
      const left = deadline - Date.now();
      if (timeoutS < 0 || left <= 0) throw new RpcError(404, "No process available for assignment");
      const woken = await this.waiters.wait(colonyname, executor.executortype, left, seen);
      if (!woken) throw new RpcError(404, "No process available for assignment");
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

  private async listProcesses(caller: string, m: Record<string, unknown>): Promise<Process[]> {
    const colonyname = str(m, "colonyname");
    await this.member(caller, colonyname);
    const count = num(m, "count");
    if (count > MAX_COUNT) throw new RpcError(400, `count is at most ${MAX_COUNT}`);
    return this.options.store.listProcesses({
      colonyname,
      state: stateOf(m.state),
      count,
      ...(typeof m.executortype === "string" ? { executortype: m.executortype } : {}),
      ...(typeof m.label === "string" ? { label: m.label } : {}),
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

  private async submitWorkflow(caller: string, input: unknown): Promise<ProcessGraph> {
    const workflow = object(input, "spec");
    const colonyname = str(workflow, "colonyname");
    const who = await this.member(caller, colonyname);
    const specs = list(workflow, "functionspecs").map((s) => {
      // the workflow's colony is every spec's (as ColonyOS does)
      const given = object(s, "functionspecs[]");
      const spec = this.specOf({
        ...given,
        conditions: { ...(given.conditions as object | null), colonyname },
      });
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
    rejectCycles([...byName.values()]);
    const processes = [...byName.values()];
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
    for (const root of processes.filter((p) => !p.waitforparents)) {
      this.waiters.wake(colonyname, root.spec.conditions.executortype, 1);
    }
    return graph;
  }

  /**
   * A running process adds a child to its graph (map/reduce): after the parent (or, with
   * `insert`, between the parent and its children).
   */
  private async addChild(caller: string, m: Record<string, unknown>): Promise<Process> {
    const parent = await this.assignedTo(caller, str(m, "parentprocessid"));
    const graphId = str(m, "processgraphid");
    if (parent.state !== RUNNING || parent.processgraphid !== graphId)
      throw new RpcError(400, "children are added by a running process of the graph");
    const graph = await this.options.store.getGraph(graphId);
    if (!graph) throw notFound("process graph");
    const spec = this.specOf(m.spec);
    spec.conditions.colonyname = graph.colonyname;
    const child = newProcess(spec, { id: caller, name: parent.spec.conditions.executortype }, Date.now(), {
      id: graphId,
      waitforparents: true,
    });
    child.parents = [parent.processid];
    const changed: Process[] = [];
    if (m.insert === true) {
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
      const after = typeof m.childprocessid === "string" ? m.childprocessid : "";
      if (after) {
        const next = await this.options.store.getProcess(after);
        if (!next || next.processgraphid !== graphId) throw notFound("child process");
        child.children = [after];
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
        this.waiters.wake(graph.colonyname, p.spec.conditions.executortype, 1);
    }
  }

  private async listGraphs(caller: string, m: Record<string, unknown>): Promise<ProcessGraph[]> {
    const colonyname = str(m, "colonyname");
    await this.member(caller, colonyname);
    const count = num(m, "count");
    if (count > MAX_COUNT) throw new RpcError(400, `count is at most ${MAX_COUNT}`);
    return this.options.store.listGraphs({ colonyname, state: stateOf(m.state ?? 0), count });
  }

  private async readableGraph(caller: string, id: string): Promise<ProcessGraph> {
    const graph = await this.options.store.getGraph(id);
    if (!graph) throw new RpcError(500, "Failed to get process graph, process graph is nil");
    await this.member(caller, graph.colonyname);
    return graph;
  }

  // ---- users, attributes, registered functions

  private async addUser(caller: string, input: unknown): Promise<User> {
    const u = object(input, "user");
    const colonyname = str(u, "colonyname");
    await this.colonyOwner(caller, colonyname);
    const user: User = {
      colonyname,
      userid: str(u, "userid"),
      name: str(u, "name"),
      email: str(u, "email"),
      phone: str(u, "phone"),
    };
    if (!/^[0-9a-f]{64}$/.test(user.userid)) throw new RpcError(400, "user id must be 64 hex characters");
    if (!user.name) throw new RpcError(400, "a user needs a name");
    const users = await this.options.store.listObjects<User>("user", colonyname);
    if (users.some((other) => other.name === user.name || other.userid === user.userid))
      throw new RpcError(400, `a user named ${user.name} (or with that id) exists in colony ${colonyname}`);
    await this.options.store.putObject("user", user.userid, colonyname, user);
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
  private async addAttribute(caller: string, input: unknown): Promise<Attribute> {
    const a = object(input, "attribute");
    const process = await this.assignedTo(caller, str(a, "targetid"));
    if (process.state !== RUNNING) throw new RpcError(400, "attributes are added while the process runs");
    const attributetype = num(a, "attributetype");
    const key = str(a, "key");
    const attribute: Attribute = {
      attributeid: sha3Hex(`${process.processid}${key}${attributetype}`),
      targetid: process.processid,
      targetcolonyname: process.spec.conditions.colonyname,
      targetprocessgraphid: process.processgraphid,
      state: process.state,
      attributetype,
      key,
      value: str(a, "value"),
    };
    await this.options.store.putObject(
      "attribute",
      attribute.attributeid,
      attribute.targetcolonyname,
      attribute,
    );
    const others = (process.attributes as Attribute[]).filter((x) => x.attributeid !== attribute.attributeid);
    await this.save([{ ...process, attributes: [...others, attribute] }]);
    return attribute;
  }

  /** An executor registers a function it runs (for discovery: `getfunctionsmsg`). */
  private async addFunction(caller: string, input: unknown): Promise<RegisteredFunction> {
    const f = object(input, "fun");
    const colonyname = str(f, "colonyname");
    const { executor } = await this.member(caller, colonyname);
    if (!executor || executor.executorname !== str(f, "executorname"))
      throw new RpcError(403, "Access denied, an executor adds its own functions");
    const fn: RegisteredFunction = {
      functionid: str(f, "functionid") || newId(),
      executorname: executor.executorname,
      executortype: executor.executortype,
      colonyname,
      funcname: str(f, "funcname"),
      description: str(f, "description"),
      args: Array.isArray(f.args) ? f.args : [],
      counter: 0,
      minwaittime: 0,
      maxwaittime: 0,
      minexectime: 0,
      maxexectime: 0,
      avgwaittime: 0,
      avgexectime: 0,
    };
    if (!fn.funcname) throw new RpcError(400, "a function needs funcname");
    await this.options.store.putObject("function", fn.functionid, colonyname, fn);
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

  private async getLogs(caller: string, m: Record<string, unknown>): Promise<unknown[]> {
    await this.member(caller, str(m, "colonyname"));
    const count = num(m, "count");
    if (count > 500) throw new RpcError(403, "count is at most 500");
    return this.options.store.getLogs({
      processid: str(m, "processid"),
      count,
      since: typeof m.since === "number" ? m.since : 0,
    });
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
        this.waiters.wake(spec.conditions.colonyname, spec.conditions.executortype, 1);
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
    const m = call.message;
    const caller = call.callerId ?? "";
    if (call.msgtype === "subscribechannelmsg") {
      const process = await this.channelProcess(caller, m, "read");
      const timeoutS = typeof m.timeout === "number" && m.timeout > 0 ? m.timeout : 30;
      return this.channels.subscribe(
        process,
        str(m, "name"),
        num(m, "afterseq"),
        timeoutS,
        (entries) => pushFrame("subscribechannelmsg", entries),
        ended,
      );
    }
    // ColonyOS sends both kinds of process frames as subscribeprocessmsg
    const push = (process: Process) => pushFrame("subscribeprocessmsg", process);
    const state = stateOf(m.state ?? SUCCESS);
    let matches: (p: Process) => boolean;
    if (call.msgtype === "subscribeprocessmsg") {
      const process = await this.readableProcess(caller, str(m, "processid"));
      matches = (p) => p.processid === process.processid && p.state === state;
      if (matches(process)) push(process);
    } else if (call.msgtype === "subscribeprocessesmsg") {
      const colonyname = str(m, "colonyname");
      const { executor } = await this.member(caller, colonyname);
      if (!executor) throw new RpcError(403, "only an executor of the colony subscribes to its processes");
      const type = str(m, "executortype");
      matches = (p) =>
        p.spec.conditions.colonyname === colonyname &&
        p.spec.conditions.executortype === type &&
        p.state === state;
    } else {
      throw new RpcError(400, `${call.msgtype} is not a subscription`);
    }
    const listener = (p: Process) => {
      if (matches(p)) push(p);
    };
    this.changes.on("process", listener);
    const timeoutS = typeof m.timeout === "number" && m.timeout > 0 ? m.timeout : 3600;
    const lifetimeMs = timerDelay(timeoutS * 1000);
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
   * The caller as a member of the colony: its owner, or one of its executors (approved,
   * unless `approved: false`).
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

  private async readableProcess(caller: string, processid: string): Promise<Process> {
    const process = await this.options.store.getProcess(processid);
    if (!process) throw new RpcError(500, "Failed to get process, process is nil");
    await this.member(caller, process.spec.conditions.colonyname);
    return process;
  }

  private async assignedTo(caller: string, processid: string): Promise<Process> {
    const process = await this.options.store.getProcess(processid);
    if (!process) throw new RpcError(500, "Failed to get process, process is nil");
    if (process.assignedexecutorid !== caller)
      throw new RpcError(403, "Access denied, not the executor assigned to the process");
    return process;
  }

  /** The process whose channel the caller reads or writes, checked (§3.5 of the protocol notes). */
  private async channelProcess(
    caller: string,
    m: Record<string, unknown>,
    what: "read" | "write",
  ): Promise<Process> {
    const process = await this.options.store.getProcess(str(m, "processid"));
    if (!process) throw new RpcError(404, "Process not found");
    await this.member(caller, process.spec.conditions.colonyname);
    ChannelHub.check(process, str(m, "name"), caller, what);
    return process;
  }

  private specOf(input: unknown): FunctionSpec {
    const spec = completeSpec(object(input, "spec") as Partial<FunctionSpec>);
    if (!spec.conditions.colonyname) throw new RpcError(400, "spec.conditions.colonyname is missing");
    if (!spec.conditions.executortype) throw new RpcError(400, "spec.conditions.executortype is missing");
    if (!Number.isInteger(spec.priority) || spec.priority < -50_000 || spec.priority > 50_000)
      throw new RpcError(400, "priority must be an integer in [-50000, 50000]");
    return spec;
  }
}

/** A process just assigned: RUNNING, its execution deadline set when it has one. */
function started(process: Process, executorid: string, now: number): Process {
  const maxexec = process.spec.maxexectime;
  return {
    ...process,
    state: RUNNING,
    isassigned: true,
    assignedexecutorid: executorid,
    starttime: timeString(now),
    // a deliberate difference from ColonyOS: maxexectime <= 0 means no limit (0 would fail at once there)
    execdeadline: maxexec > 0 ? timeString(now + maxexec * 1000) : ZERO_TIME,
  };
}

function rejectCycles(processes: readonly Process[]): void {
  const byId = new Map(processes.map((p) => [p.processid, p]));
  const state = new Map<string, "visiting" | "done">();
  const visit = (p: Process): void => {
    if (state.get(p.processid) === "done") return;
    if (state.get(p.processid) === "visiting")
      throw new RpcError(400, `the workflow has a cycle through ${p.spec.nodename}`);
    state.set(p.processid, "visiting");
    for (const child of p.children) visit(byId.get(child) as Process);
    state.set(p.processid, "done");
  };
  for (const p of processes) visit(p);
}

function capabilitiesOf(input: unknown): Executor["capabilities"] {
  const c = (input ?? {}) as { hardware?: unknown; software?: unknown };
  // older clients send single objects, newer ones arrays
  const asList = (v: unknown) => (Array.isArray(v) ? v : v ? [v] : []);
  return { hardware: asList(c.hardware), software: asList(c.software) };
}

function object(value: unknown, field: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new RpcError(400, `${field} must be an object`);
  return value as Record<string, unknown>;
}

function str(m: Record<string, unknown>, field: string): string {
  const value = m[field];
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") throw new RpcError(400, `${field} must be a string`);
  return value;
}

function num(m: Record<string, unknown>, field: string): number {
  const value = m[field] ?? 0;
  if (typeof value !== "number" || !Number.isFinite(value))
    throw new RpcError(400, `${field} must be a number`);
  return value;
}

function list(m: Record<string, unknown>, field: string): unknown[] {
  const value = m[field] ?? [];
  if (!Array.isArray(value)) throw new RpcError(400, `${field} must be a list`);
  return value;
}

function stateOf(value: unknown): ProcessState {
  if (value === WAITING || value === RUNNING || value === SUCCESS || value === FAILED || value === CANCELLED)
    return value;
  throw new RpcError(400, "state must be 0 (waiting), 1 (running), 2 (success), 3 (failed) or 4 (cancelled)");
}

function stateName(state: ProcessState): string {
  return ["WAITING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED"][state] ?? String(state);
}

function finished(state: ProcessState): boolean {
  return state === SUCCESS || state === FAILED || state === CANCELLED;
}

/** A process cancelled now: never assigned again, no deadlines. */
function cancelled(process: Process, now: number): Process {
  return {
    ...process,
    state: CANCELLED,
    endtime: timeString(now),
    execdeadline: ZERO_TIME,
    waitdeadline: ZERO_TIME,
  };
}

function notFound(what: string): RpcError {
  return new RpcError(404, `the ${what} does not exist`);
}

function conflict(message: string): (err: unknown) => never {
  return (err: unknown) => {
    if (err instanceof ConflictError) throw new RpcError(400, message);
    throw err;
  };
}
