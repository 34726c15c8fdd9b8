import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConflictError } from "../../../src/errors.js";
import type {
  ChannelEntry,
  Colony,
  Executor,
  LogEntry,
  Process,
  ProcessGraph,
  ProcessState,
} from "../../../src/queue/model.js";
import {
  FAILED,
  RUNNING,
  SUCCESS,
  WAITING,
  ZERO_TIME,
  completeSpec,
  newId,
  newProcess,
  timeString,
} from "../../../src/queue/model.js";
import type { AssignRequest, QueueStore } from "../../../src/queue/queue-store.js";

/** A fixed submission time, so orderings do not depend on the clock. */
const T0 = Date.parse("2024-05-01T12:00:00.000Z");
const INITIATOR = { id: "a1".repeat(32), name: "alice" };

export function colony(name: string): Colony {
  return { colonyid: newId(), name };
}

export function executor(colonyname: string, executorname: string, executortype = "cpu"): Executor {
  return {
    executorid: newId(),
    executortype,
    executorname,
    colonyname,
    state: 0,
    requirefuncreg: false,
    commissiontime: timeString(T0),
    lastheardfromtime: timeString(T0),
    location: { long: 18.0686, lat: 59.3293, name: "sthlm", desc: 'rack 4, "blue" row' },
    capabilities: {
      hardware: [{ model: "epyc", cores: 64, mem: "512Gi", gpu: { name: "a100", count: 2 } }],
      software: [{ name: "python", type: "runtime", version: "3.11" }],
    },
    allocations: { projects: { p1: { allocatedcpu: 1, usedcpu: 0.5 } } },
  };
}

export interface ProcessOptions {
  colony?: string;
  type?: string;
  names?: string[];
  label?: string;
  priority?: number;
  /** Submission time in ms (default T0). */
  at?: number;
  maxwaittime?: number;
  graph?: { id: string; waitforparents: boolean };
  /** Names the process in assertions. */
  func?: string;
}

/** A WAITING process as the server submits it. */
export function proc(o: ProcessOptions = {}): Process {
  const spec = completeSpec({
    funcname: o.func ?? "work",
    label: o.label ?? "",
    priority: o.priority ?? 0,
    maxwaittime: o.maxwaittime ?? -1,
    conditions: {
      colonyname: o.colony ?? "dev",
      executortype: o.type ?? "cpu",
      executornames: o.names ?? [],
    },
  });
  return newProcess(spec, INITIATOR, o.at ?? T0, o.graph);
}

/** As the server marks a process it assigns. */
function started(p: Process, executorid: string, atMs: number, maxexecS = -1): Process {
  return {
    ...p,
    state: RUNNING,
    isassigned: true,
    assignedexecutorid: executorid,
    starttime: timeString(atMs),
    execdeadline: maxexecS > 0 ? timeString(atMs + maxexecS * 1000) : ZERO_TIME,
  };
}

function finished(p: Process, state: typeof SUCCESS | typeof FAILED, atMs: number): Process {
  return { ...p, state, endtime: timeString(atMs), execdeadline: ZERO_TIME };
}

/** A process with every field set, with values JSON and SQL both find awkward. */
function fullProcess(): Process {
  const base = proc();
  return {
    ...base,
    initiatorname: "ålice ✓",
    retries: 2,
    attributes: [{ key: "k", value: "v", nested: { n: null } }],
    spec: completeSpec({
      nodename: "node-1",
      funcname: "train",
      args: [1, 2.5, -0.125, 1e-7, 2 ** 60, "héllo ✓ 😀", 'q"uote \\ back', "nul\u0000byte", null, true, []],
      kwargs: { lr: 0.001, "key.with.dots": 'v"', "": "", "$.a": [{ deep: { deeper: [1, "2"] } }] },
      priority: -7,
      maxwaittime: 30,
      maxexectime: 600,
      maxretries: 3,
      conditions: {
        colonyname: "dev",
        executornames: ["worker-1", 'wörker "2"'],
        executortype: "gpu",
        dependencies: ["prep"],
        nodes: 2,
        cpu: "4000m",
        processes: 8,
        processespernode: 4,
        mem: "16Gi",
        storage: "100Gi",
        gpu: { name: "a100", mem: "80Gi", count: 2, nodecount: 1 },
        walltime: 3600,
      },
      label: "exp-1",
      fs: { mount: "/cfs", snapshots: [{ id: "s1", label: "data" }], dirs: [{ dir: "/d", label: "l" }] },
      env: { PATH: "/usr/bin", "WITH SPACE": "a=b", EMPTY: "" },
    }),
    waitdeadline: "2024-05-01T12:00:30.000000Z",
    parents: [newId()],
    children: [newId(), newId()],
    processgraphid: newId(),
    in: [{ x: 1 }],
    out: ["result", 42, { ok: true }],
    errors: ["first error", "second\nline"],
  };
}

function graphOf(
  colonyname: string,
  atMs: number,
  processes: Process[],
  id = processes[0]?.processgraphid ?? newId(),
): ProcessGraph {
  return {
    processgraphid: id,
    initiatorid: INITIATOR.id,
    initiatorname: INITIATOR.name,
    colonyname,
    rootprocessids: processes.filter((p) => p.parents.length === 0).map((p) => p.processid),
    state: WAITING,
    submissiontime: timeString(atMs),
    starttime: ZERO_TIME,
    endtime: ZERO_TIME,
    processids: processes.map((p) => p.processid),
    nodes: [{ id: "n1", data: { label: "prep" } }],
    edges: [{ source: "n1", target: "n2", animated: true }],
  };
}

/** Processes of one workflow submitted at `atMs`: the first a root, the rest waiting for it. */
function workflow(colonyname: string, atMs: number, size = 2): { processes: Process[]; graph: ProcessGraph } {
  const id = newId();
  const processes = Array.from({ length: size }, (_, i) =>
    proc({ colony: colonyname, at: atMs, func: `node${i}`, graph: { id, waitforparents: i > 0 } }),
  );
  for (const child of processes.slice(1)) {
    child.parents = [processes[0]!.processid];
    processes[0]!.children.push(child.processid);
  }
  return { processes, graph: graphOf(colonyname, atMs, processes, id) };
}

function log(processid: string, message: string, timestamp: number): LogEntry {
  return { processid, colonyname: "dev", executorname: "worker-1", message, timestamp };
}

function requestOf(e: Executor): AssignRequest {
  return {
    colonyname: e.colonyname,
    executorid: e.executorid,
    executorname: e.executorname,
    executortype: e.executortype,
  };
}

const funcs = (processes: Process[]): string[] => processes.map((p) => p.spec.funcname);
const pids = (processes: Process[]): string[] => processes.map((p) => p.processid);
const names = (executors: Executor[]): string[] => executors.map((e) => e.executorname);
const sorted = (values: string[]): string[] => [...values].sort();

export interface QueueStoreTarget {
  name: string;
  /** A fresh, empty store. */
  open: () => Promise<QueueStore>;
  /**
   * Another store on the same data, also while the first is still open (durable stores
   * that several service processes share).
   */
  reopen?: () => Promise<QueueStore>;
}

/** The contract every QueueStore keeps. */
export function queueStoreConformance(target: QueueStoreTarget): void {
  describe(`queue store conformance: ${target.name}`, () => {
    let store: QueueStore;
    beforeEach(async () => {
      store = await target.open();
    });
    afterEach(async () => {
      await store.close();
    });

    const list = (
      state: ProcessState,
      extra: { executortype?: string; label?: string; count?: number } = {},
    ) => store.listProcesses({ colonyname: "dev", state, count: extra.count ?? 100, ...extra });

    describe("colonies", () => {
      it("adds, reads and lists colonies sorted by name", async () => {
        const [b, a, c] = [colony("beta"), colony("alpha"), colony("gamma")];
        for (const x of [b, a, c]) await store.addColony(x);
        expect(await store.getColony("alpha")).toStrictEqual(a);
        expect(await store.getColony("missing")).toBeUndefined();
        expect(await store.listColonies()).toStrictEqual([a, b, c]);
      });

      it("refuses a taken name with ConflictError (code CONFLICT) and keeps the first colony", async () => {
        const first = colony("dev");
        await store.addColony(first);
        const refused = await store.addColony(colony("dev")).catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(ConflictError);
        expect((refused as ConflictError).code).toBe("CONFLICT");
        expect((refused as Error).message).toContain("dev");
        expect(await store.listColonies()).toStrictEqual([first]);
      });

      it("removes a colony with its executors, processes and graphs, and nothing of another colony", async () => {
        for (const name of ["dev", "prod"]) {
          await store.addColony(colony(name));
          await store.addExecutor(executor(name, "worker-1"));
          await store.addProcesses([proc({ colony: name })]);
          const wf = workflow(name, T0);
          await store.addProcesses(wf.processes, wf.graph);
        }
        const devExecutor = (await store.getExecutor("dev", "worker-1"))!;
        const devProcesses = await list(WAITING);
        const devGraphs = await store.listGraphs({ colonyname: "dev", state: WAITING, count: 10 });
        expect(devProcesses).toHaveLength(3);
        expect(devGraphs).toHaveLength(1);

        expect(await store.removeColony("dev")).toBe(true);
        expect(await store.getColony("dev")).toBeUndefined();
        expect(await store.listExecutors("dev")).toEqual([]);
        expect(await store.getExecutor("dev", "worker-1")).toBeUndefined();
        expect(await store.getExecutorById(devExecutor.executorid)).toBeUndefined();
        expect(await list(WAITING)).toEqual([]);
        expect(await store.getProcesses(pids(devProcesses))).toEqual([]);
        expect(await store.getGraph(devGraphs[0]!.processgraphid)).toBeUndefined();
        expect(await store.listGraphs({ colonyname: "dev", state: WAITING, count: 10 })).toEqual([]);
        expect(await store.assign(requestOf(devExecutor), (p) => p)).toBeUndefined();

        expect((await store.listColonies()).map((c) => c.name)).toEqual(["prod"]);
        expect(names(await store.listExecutors("prod"))).toEqual(["worker-1"]);
        expect(await store.listProcesses({ colonyname: "prod", state: WAITING, count: 10 })).toHaveLength(3);
        expect(await store.listGraphs({ colonyname: "prod", state: WAITING, count: 10 })).toHaveLength(1);

        expect(await store.removeColony("dev")).toBe(false);
        // the name is free again
        await store.addColony(colony("dev"));
        expect(await store.listExecutors("dev")).toEqual([]);
      });
    });

    describe("executors", () => {
      it("adds an executor and reads it by name and by id, exactly; lists a colony's sorted by name", async () => {
        const w2 = executor("dev", "worker-2");
        const w1 = executor("dev", "worker-1", "gpu");
        const other = executor("prod", "worker-0");
        for (const e of [w2, w1, other]) await store.addExecutor(e);
        expect(await store.getExecutor("dev", "worker-1")).toStrictEqual(w1);
        expect(await store.getExecutorById(w2.executorid)).toStrictEqual(w2);
        expect(await store.getExecutor("prod", "worker-1")).toBeUndefined();
        expect(await store.getExecutor("dev", "missing")).toBeUndefined();
        expect(await store.getExecutorById(newId())).toBeUndefined();
        expect(await store.listExecutors("dev")).toStrictEqual([w1, w2]);
        expect(await store.listExecutors("prod")).toStrictEqual([other]);
        expect(await store.listExecutors("none")).toEqual([]);
      });

      it("refuses a taken (colony, name) or id with ConflictError; the same name in another colony is fine", async () => {
        const first = executor("dev", "worker-1");
        await store.addExecutor(first);
        const refused = await store.addExecutor(executor("dev", "worker-1")).catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(ConflictError);
        expect((refused as ConflictError).code).toBe("CONFLICT");
        await expect(
          store.addExecutor({ ...executor("prod", "other"), executorid: first.executorid }),
        ).rejects.toBeInstanceOf(ConflictError);
        expect(await store.listExecutors("dev")).toStrictEqual([first]);
        expect(await store.listExecutors("prod")).toEqual([]);
        const elsewhere = executor("prod", "worker-1");
        await store.addExecutor(elsewhere);
        expect(await store.getExecutor("prod", "worker-1")).toStrictEqual(elsewhere);
      });

      it("updates an executor by id, as every lookup sees it", async () => {
        const e = executor("dev", "worker-1");
        await store.addExecutor(e);
        const approved = { ...e, state: 1, lastheardfromtime: timeString(T0 + 5_000) };
        await store.updateExecutor(approved);
        expect(await store.getExecutor("dev", "worker-1")).toStrictEqual(approved);
        expect(await store.getExecutorById(e.executorid)).toStrictEqual(approved);
        expect(await store.listExecutors("dev")).toStrictEqual([approved]);
        // an unknown executor is not created by an update
        const ghost = executor("dev", "ghost");
        await store.updateExecutor(ghost);
        expect(await store.getExecutorById(ghost.executorid)).toBeUndefined();
        expect(await store.listExecutors("dev")).toHaveLength(1);
      });

      it("removes an executor once (false the second time) and frees its name", async () => {
        const e = executor("dev", "worker-1");
        await store.addExecutor(e);
        await store.addExecutor(executor("dev", "worker-2"));
        expect(await store.removeExecutor("dev", "worker-1")).toBe(true);
        expect(await store.removeExecutor("dev", "worker-1")).toBe(false);
        expect(await store.getExecutorById(e.executorid)).toBeUndefined();
        expect(names(await store.listExecutors("dev"))).toEqual(["worker-2"]);
        await store.addExecutor(executor("dev", "worker-1"));
        expect(names(await store.listExecutors("dev"))).toEqual(["worker-1", "worker-2"]);
      });
    });

    describe("processes", () => {
      it("round-trips every field exactly", async () => {
        const full = fullProcess();
        const bare = proc({ at: T0 + 1 });
        await store.addProcesses([full, bare]);
        expect(await store.getProcess(full.processid)).toStrictEqual(full);
        expect(await store.getProcess(bare.processid)).toStrictEqual(bare);
        expect((await store.getProcess(full.processid))?.prioritytime).toBe(full.prioritytime);
        expect(await store.getProcess(newId())).toBeUndefined();
      });

      it("reads several processes in the order asked, skipping missing ids", async () => {
        const [a, b, c] = [proc({ func: "a" }), proc({ func: "b" }), proc({ func: "c" })];
        await store.addProcesses([a, b, c]);
        expect(await store.getProcesses([c.processid, newId(), a.processid, b.processid])).toStrictEqual([
          c,
          a,
          b,
        ]);
        expect(await store.getProcesses([])).toEqual([]);
        expect(await store.getProcesses([newId()])).toEqual([]);
      });

      it("adds a workflow's processes with their graph", async () => {
        const { processes, graph } = workflow("dev", T0, 3);
        await store.addProcesses(processes, graph);
        expect(await store.getGraph(graph.processgraphid)).toStrictEqual(graph);
        expect(await store.getProcesses(graph.processids)).toStrictEqual(processes);
      });

      it("adds a batch all at once: one taken id stores none of the batch, nor its graph", async () => {
        const taken = proc({ func: "taken" });
        await store.addProcesses([taken]);
        const { processes, graph } = workflow("dev", T0, 2);
        const clash = { ...proc({ func: "clash" }), processid: taken.processid };
        await expect(store.addProcesses([...processes, clash], graph)).rejects.toThrow();
        expect(await store.getProcesses(pids(processes))).toEqual([]);
        expect(await store.getGraph(graph.processgraphid)).toBeUndefined();
        expect(await store.getProcess(taken.processid)).toStrictEqual(taken);
        expect(funcs(await list(WAITING))).toEqual(["taken"]);
        // a taken graph id refuses the batch too
        const again = workflow("dev", T0, 2);
        await store.addProcesses(processes, graph);
        await expect(
          store.addProcesses(again.processes, { ...again.graph, processgraphid: graph.processgraphid }),
        ).rejects.toThrow();
        expect(await store.getProcesses(pids(again.processes))).toEqual([]);
        expect(await store.getGraph(graph.processgraphid)).toStrictEqual(graph);
      });

      it("lists WAITING processes by priority time, then submission order", async () => {
        const a = proc({ func: "a", at: T0 + 3_000 });
        const b = proc({ func: "b", at: T0 + 1_000 });
        const c = proc({ func: "c", at: T0 + 9_000, priority: 1 }); // a day earlier
        const d = proc({ func: "d", at: T0 + 1_000 }); // b's priority time, submitted after it
        const e = proc({ func: "e", at: T0, priority: -1 });
        const top = proc({ func: "top", at: T0 + 20_000, priority: 50_000 }); // a negative priority time
        const last = proc({ func: "last", at: T0 - 20_000, priority: -50_000 });
        await store.addProcesses([a, e, last]);
        await store.addProcesses([b]);
        await store.addProcesses([c, d, top]);
        // elsewhere: another colony, another state
        await store.addProcesses([proc({ colony: "prod", func: "prod" })]);
        const running = proc({ func: "running", priority: 9 });
        await store.addProcesses([running]);
        await store.updateProcesses([started(running, newId(), T0)]);

        expect(funcs(await list(WAITING))).toEqual(["top", "c", "b", "d", "a", "e", "last"]);
        expect(funcs(await list(WAITING, { count: 3 }))).toEqual(["top", "c", "b"]);
        expect(await list(WAITING, { count: 0 })).toEqual([]);
        expect(funcs(await store.listProcesses({ colonyname: "prod", state: WAITING, count: 10 }))).toEqual([
          "prod",
        ]);
        expect(await store.listProcesses({ colonyname: "none", state: WAITING, count: 10 })).toEqual([]);
        expect((await list(WAITING))[0]).toStrictEqual(top);
      });

      it("filters the list by executor type and by label", async () => {
        await store.addProcesses([
          proc({ func: "cpu-x", type: "cpu", label: "x", at: T0 + 1 }),
          proc({ func: "gpu-x", type: "gpu", label: "x", at: T0 + 2 }),
          proc({ func: "cpu-y", type: "cpu", label: "y", at: T0 + 3 }),
          proc({ func: "cpu", type: "cpu", at: T0 + 4 }),
          proc({ func: "cpu2-x", type: "cpu2", label: "xy", at: T0 + 5 }),
        ]);
        expect(funcs(await list(WAITING))).toEqual(["cpu-x", "gpu-x", "cpu-y", "cpu", "cpu2-x"]);
        expect(funcs(await list(WAITING, { executortype: "cpu" }))).toEqual(["cpu-x", "cpu-y", "cpu"]);
        expect(funcs(await list(WAITING, { label: "x" }))).toEqual(["cpu-x", "gpu-x"]);
        expect(funcs(await list(WAITING, { executortype: "cpu", label: "y" }))).toEqual(["cpu-y"]);
        expect(funcs(await list(WAITING, { executortype: "cpu", label: "x", count: 1 }))).toEqual(["cpu-x"]);
        expect(await list(WAITING, { executortype: "tpu" })).toEqual([]);
        expect(await list(WAITING, { label: "z" })).toEqual([]);
      });

      it("lists RUNNING processes by start time, then submission order", async () => {
        const ps = ["a", "b", "c", "d"].map((func, i) => proc({ func, at: T0 + i }));
        await store.addProcesses(ps);
        const starts = [T0 + 5_000, T0 + 2_000, T0 + 8_000, T0 + 5_000];
        await store.updateProcesses(ps.map((p, i) => started(p, newId(), starts[i]!)));
        expect(funcs(await list(RUNNING))).toEqual(["b", "a", "d", "c"]);
        expect(funcs(await list(RUNNING, { count: 2 }))).toEqual(["b", "a"]);
        expect(await list(WAITING)).toEqual([]);
      });

      it("lists SUCCESS and FAILED processes newest end time first", async () => {
        const ps = ["a", "b", "c", "d", "e", "f"].map((func, i) => proc({ func, at: T0 + i }));
        await store.addProcesses(ps);
        const ends = [T0 + 1_000, T0 + 7_000, T0 + 4_000, T0 + 4_000, T0 + 2_000, T0 + 9_000];
        await store.updateProcesses(
          ps.map((p, i) => finished(started(p, newId(), T0), i < 4 ? SUCCESS : FAILED, ends[i]!)),
        );
        // equal end times: the later submitted first
        expect(funcs(await list(SUCCESS))).toEqual(["b", "d", "c", "a"]);
        expect(funcs(await list(SUCCESS, { count: 2 }))).toEqual(["b", "d"]);
        expect(funcs(await list(FAILED))).toEqual(["f", "e"]);
        expect(await list(RUNNING)).toEqual([]);
      });

      it("replaces processes with new versions, which queries then select on", async () => {
        const a = proc({ func: "a", type: "cpu", label: "old" });
        const b = proc({ func: "b", at: T0 + 1 });
        await store.addProcesses([a, b]);
        const a2: Process = {
          ...a,
          spec: { ...a.spec, label: "new", conditions: { ...a.spec.conditions, executortype: "gpu" } },
          out: [{ r: 1 }],
        };
        const b2 = finished(started(b, newId(), T0 + 10), SUCCESS, T0 + 20);
        await store.updateProcesses([a2, b2]);
        expect(await store.getProcesses([a.processid, b.processid])).toStrictEqual([a2, b2]);
        expect(funcs(await list(WAITING, { label: "new", executortype: "gpu" }))).toEqual(["a"]);
        expect(await list(WAITING, { label: "old" })).toEqual([]);
        expect(funcs(await list(SUCCESS))).toEqual(["b"]);
        // an unknown process is not created by an update
        const ghost = proc({ func: "ghost" });
        await store.updateProcesses([ghost]);
        expect(await store.getProcess(ghost.processid)).toBeUndefined();
        expect(funcs(await list(WAITING))).toEqual(["a"]);
        await store.updateProcesses([]);
      });

      it("removes a process once (false the second time)", async () => {
        const [a, b] = [proc({ func: "a" }), proc({ func: "b", at: T0 + 1 })];
        await store.addProcesses([a, b]);
        expect(await store.removeProcess(a.processid)).toBe(true);
        expect(await store.removeProcess(a.processid)).toBe(false);
        expect(await store.getProcess(a.processid)).toBeUndefined();
        expect(funcs(await list(WAITING))).toEqual(["b"]);
        const e = executor("dev", "worker-1");
        expect((await store.assign(requestOf(e), (p) => started(p, e.executorid, T0)))?.processid).toBe(
          b.processid,
        );
        expect(await store.assign(requestOf(e), (p) => p)).toBeUndefined();
      });
    });

    describe("assign", () => {
      const w1 = executor("dev", "worker-1");
      const take = (e: Executor = w1, at = T0 + 60_000) =>
        store.assign(requestOf(e), (p) => started(p, e.executorid, at));

      it("returns undefined, without calling start, when there is nothing to assign", async () => {
        let called = 0;
        expect(
          await store.assign(requestOf(w1), (p) => {
            called++;
            return p;
          }),
        ).toBeUndefined();
        expect(called).toBe(0);
      });

      it("takes, in priority order, only WAITING processes for this executor", async () => {
        // all more urgent than the eligible ones, none for worker-1
        const child = proc({
          func: "waits for parents",
          priority: 9,
          graph: { id: newId(), waitforparents: true },
        });
        const ineligible = [
          proc({ func: "other colony", colony: "prod", priority: 9 }),
          proc({ func: "other type", type: "gpu", priority: 9 }),
          proc({ func: "other executor", names: ["worker-10", "Worker-1", "worker-"], priority: 9 }),
          proc({ func: "lookalike", names: ['"worker-1"', "[worker-1]", "worker-1 "], priority: 9 }),
          { ...proc({ func: "assigned", priority: 9 }), isassigned: true },
        ];
        const running = proc({ func: "running", priority: 9 });
        const done = proc({ func: "done", priority: 9 });
        const eligible = [
          proc({ func: "1st: named", names: ["worker-0", "worker-1"], priority: 2 }),
          proc({ func: "2nd", priority: 1, at: T0 }),
          proc({ func: "3rd: same time, later", priority: 1, at: T0 }),
          proc({ func: "4th", priority: 0, at: T0 }),
          proc({ func: "5th: only me", names: ["worker-1"], at: T0 + 1 }),
        ];
        await store.addProcesses([eligible[4]!, eligible[3]!]);
        await store.addProcesses([...ineligible, running, done, child]);
        await store.addProcesses(eligible.slice(0, 3));
        await store.updateProcesses([
          started(running, newId(), T0),
          finished(started(done, newId(), T0), SUCCESS, T0 + 1),
        ]);

        const taken: Process[] = [];
        for (;;) {
          const p = await take();
          if (!p) break;
          taken.push(p);
        }
        expect(funcs(taken)).toEqual(funcs(eligible));
        for (const p of taken) {
          expect(p).toMatchObject({ state: RUNNING, isassigned: true, assignedexecutorid: w1.executorid });
          expect(await store.getProcess(p.processid)).toStrictEqual(p);
        }
        for (const p of [...ineligible, child]) expect(await store.getProcess(p.processid)).toStrictEqual(p);
        expect(await take()).toBeUndefined();
      });

      it("gives a process naming an executor to that executor only", async () => {
        const w2 = executor("dev", "worker-2");
        const forW2 = proc({ func: "for w2", names: ["worker-2"] });
        await store.addProcesses([forW2]);
        expect(await take(w1)).toBeUndefined();
        expect((await take(w2))?.processid).toBe(forW2.processid);
        // and an executor of another colony or type gets nothing of this colony's
        await store.addProcesses([proc({ func: "any" })]);
        expect(await take(executor("prod", "worker-1"))).toBeUndefined();
        expect(await take(executor("dev", "worker-1", "gpu"))).toBeUndefined();
        expect((await take(w1))?.spec.funcname).toBe("any");
      });

      it("stores what `start` returns, given the stored process", async () => {
        const p = fullProcess();
        const waiting = {
          ...p,
          spec: { ...p.spec, conditions: { ...p.spec.conditions, executortype: "cpu" } },
        };
        await store.addProcesses([waiting]);
        let seen: Process | undefined;
        const marked = await store.assign(requestOf(w1), (q) => {
          seen = q;
          return { ...started(q, w1.executorid, T0 + 5, 600), attributes: [{ by: "start" }], retries: 7 };
        });
        expect(seen).toStrictEqual(waiting);
        expect(marked).toStrictEqual({
          ...started(waiting, w1.executorid, T0 + 5, 600),
          attributes: [{ by: "start" }],
          retries: 7,
        });
        expect(await store.getProcess(waiting.processid)).toStrictEqual(marked);
        expect(await list(RUNNING)).toStrictEqual([marked]);
        expect(await list(WAITING)).toEqual([]);
      });

      it("leaves the process WAITING when `start` throws", async () => {
        const p = proc();
        await store.addProcesses([p]);
        const boom = new Error("start failed");
        await expect(
          store.assign(requestOf(w1), () => {
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect(await store.getProcess(p.processid)).toStrictEqual(p);
        expect((await take())?.processid).toBe(p.processid);
      });

      it("takes a process again once it is put back to WAITING, and one whose parents finished", async () => {
        const p = proc({ func: "retried" });
        const { processes } = workflow("dev", T0 + 1, 2);
        await store.addProcesses([p]);
        await store.addProcesses(processes);
        const first = (await take())!;
        expect(first.processid).toBe(p.processid);
        expect((await take())?.processid).toBe(processes[0]!.processid);
        expect(await take()).toBeUndefined(); // the child waits for its parent
        await store.updateProcesses([
          { ...first, state: WAITING, isassigned: false, assignedexecutorid: "", retries: 1 },
          { ...processes[1]!, waitforparents: false },
        ]);
        const again = (await take(w1, T0 + 90_000))!;
        expect(again).toMatchObject({
          processid: p.processid,
          retries: 1,
          starttime: timeString(T0 + 90_000),
        });
        expect((await take())?.processid).toBe(processes[1]!.processid);
        expect(await take()).toBeUndefined();
      });

      it("gives back an assignment only while it is still that one: WAITING again, no retry counted", async () => {
        const p = proc({ func: "handed-over" });
        await store.addProcesses([p]);
        const taken = (await take(w1, T0 + 60_000))!;
        const assigned = { processid: p.processid, executorid: w1.executorid, starttime: taken.starttime };
        const back = (q: Process): Process => ({
          ...q,
          state: WAITING,
          isassigned: false,
          assignedexecutorid: "",
          starttime: ZERO_TIME,
          execdeadline: ZERO_TIME,
        });
        // another executor's, or an earlier start's, assignment is not given back
        expect(await store.release({ ...assigned, executorid: newId() }, back)).toBeUndefined();
        expect(await store.release({ ...assigned, starttime: timeString(T0) }, back)).toBeUndefined();
        expect((await store.getProcess(p.processid))?.state).toBe(RUNNING);
        const given = await store.release(assigned, back);
        expect(given).toMatchObject({
          state: WAITING,
          isassigned: false,
          assignedexecutorid: "",
          retries: 0,
        });
        expect(await store.getProcess(p.processid)).toStrictEqual(given);
        expect(await store.release(assigned, back)).toBeUndefined(); // once
        // assignable again, and a later assignment is not undone by the old one's release
        const again = (await take(w1, T0 + 90_000))!;
        expect(again.processid).toBe(p.processid);
        expect(await store.release(assigned, back)).toBeUndefined();
        expect((await store.getProcess(p.processid))?.starttime).toBe(timeString(T0 + 90_000));
      });

      it("gives back nothing once the process is closed", async () => {
        const p = proc({ func: "closed-first" });
        await store.addProcesses([p]);
        const taken = (await take())!;
        await store.updateProcesses([finished(taken, SUCCESS, T0 + 61_000)]);
        expect(
          await store.release(
            { processid: p.processid, executorid: w1.executorid, starttime: taken.starttime },
            (q) => ({ ...q, state: WAITING }),
          ),
        ).toBeUndefined();
        expect((await store.getProcess(p.processid))?.state).toBe(SUCCESS);
      });

      /** 8 executors, each taking until nothing is left, spread over `stores`. */
      async function race(stores: QueueStore[]): Promise<void> {
        const added = Array.from({ length: 200 }, (_, i) =>
          proc({ func: `p${i}`, at: T0 + (i % 50), priority: i % 3 }),
        );
        await stores[0]!.addProcesses(added.slice(0, 100));
        await stores[0]!.addProcesses(added.slice(100));
        const executors = Array.from({ length: 8 }, (_, i) => executor("dev", `worker-${i}`));
        const got = await Promise.all(
          executors.map(async (e, i) => {
            const mine: string[] = [];
            for (;;) {
              const p = await stores[i % stores.length]!.assign(requestOf(e), (q) =>
                started(q, e.executorid, T0 + 60_000),
              );
              if (!p) return mine;
              expect(p.assignedexecutorid).toBe(e.executorid);
              mine.push(p.processid);
            }
          }),
        );
        const all = got.flat();
        expect(all).toHaveLength(200);
        expect(new Set(all).size).toBe(200);
        expect(sorted(all)).toEqual(sorted(pids(added)));
        // the store holds what each executor was given
        const owner = new Map(got.flatMap((ids, i) => ids.map((id) => [id, executors[i]!.executorid])));
        for (const p of await stores[0]!.getProcesses(pids(added))) {
          expect(p.state).toBe(RUNNING);
          expect(p.assignedexecutorid).toBe(owner.get(p.processid));
        }
        expect(await stores[0]!.listProcesses({ colonyname: "dev", state: WAITING, count: 1_000 })).toEqual(
          [],
        );
        expect(
          await stores[0]!.listProcesses({ colonyname: "dev", state: RUNNING, count: 1_000 }),
        ).toHaveLength(200);
      }

      it("gives each of 200 processes to exactly one of 8 concurrent executors", async () => {
        await race([store]);
      });

      it.skipIf(!target.reopen)(
        "gives each of 200 processes to exactly one of 8 concurrent executors, over two stores on the same data",
        async () => {
          const other = await (target.reopen as () => Promise<QueueStore>)();
          try {
            await race([store, other]);
          } finally {
            await other.close();
          }
        },
      );
    });

    describe("deadlines", () => {
      it("finds RUNNING processes past their execution deadline and WAITING ones past their waiting deadline", async () => {
        const now = T0 + 60_000;
        const run = (func: string, execdeadline: string, colonyname = "dev"): Process => ({
          ...started(proc({ func, colony: colonyname }), newId(), T0),
          execdeadline,
        });
        const runPast = run("run past", timeString(T0 + 1_000));
        const runPastProd = run("run past prod", timeString(now - 1), "prod");
        const runAtNow = run("run at now", timeString(now));
        const runFuture = run("run future", timeString(now + 60_000));
        const runNone = run("run none", ZERO_TIME);
        const runStaleWait = { ...run("run stale wait", ZERO_TIME), waitdeadline: timeString(T0 + 1) };
        const waitPast = proc({ func: "wait past", maxwaittime: 1 }); // deadline T0 + 1 s
        const waitPastProd = proc({ func: "wait past prod", colony: "prod", maxwaittime: 59 });
        const waitAtNow = proc({ func: "wait at now", maxwaittime: 60 });
        const waitFuture = proc({ func: "wait future", maxwaittime: 3_600 });
        const waitNone = proc({ func: "wait none", maxwaittime: -1 });
        const waitStaleExec = { ...proc({ func: "wait stale exec" }), execdeadline: timeString(T0) };
        const done = {
          ...finished(started(proc({ func: "done" }), newId(), T0), FAILED, T0 + 2),
          execdeadline: timeString(T0 + 1),
          waitdeadline: timeString(T0 + 1),
        };
        const all = [
          runPast,
          runPastProd,
          runAtNow,
          runFuture,
          runNone,
          runStaleWait,
          waitPast,
          waitPastProd,
          waitAtNow,
          waitFuture,
          waitNone,
          waitStaleExec,
          done,
        ];
        await store.addProcesses(all.map((p) => ({ ...p, state: WAITING })));
        await store.updateProcesses(all);
        expect(waitNone.waitdeadline).toBe(ZERO_TIME);

        const past = await store.pastDeadlines(now);
        expect(sorted(funcs(past.running))).toEqual(sorted(["run past", "run past prod"]));
        expect(sorted(funcs(past.waiting))).toEqual(sorted(["wait past", "wait past prod"]));
        expect(past.running.find((p) => p.processid === runPast.processid)).toStrictEqual(runPast);
        expect(past.waiting.find((p) => p.processid === waitPast.processid)).toStrictEqual(waitPast);

        const later = await store.pastDeadlines(now + 1);
        expect(sorted(funcs(later.running))).toEqual(sorted(["run past", "run past prod", "run at now"]));
        expect(sorted(funcs(later.waiting))).toEqual(sorted(["wait past", "wait past prod", "wait at now"]));
        expect(await store.pastDeadlines(T0)).toEqual({ running: [], waiting: [] });
      });
    });

    describe("graphs", () => {
      it("reads a graph exactly and replaces it", async () => {
        const { processes, graph } = workflow("dev", T0, 2);
        await store.addProcesses(processes, graph);
        expect(await store.getGraph(graph.processgraphid)).toStrictEqual(graph);
        expect(await store.getGraph(newId())).toBeUndefined();
        const running: ProcessGraph = {
          ...graph,
          state: RUNNING,
          starttime: timeString(T0 + 5),
          processids: [...graph.processids, newId()],
        };
        await store.updateGraph(running);
        expect(await store.getGraph(graph.processgraphid)).toStrictEqual(running);
        // an unknown graph is not created by an update
        const ghost = workflow("dev", T0).graph;
        await store.updateGraph(ghost);
        expect(await store.getGraph(ghost.processgraphid)).toBeUndefined();
      });

      it("lists a colony's graphs in a state, newest first, up to count", async () => {
        const made: Record<string, ProcessGraph> = {};
        for (const [name, at, colonyname] of [
          ["g1", T0, "dev"],
          ["g3", T0 + 2_000, "dev"],
          ["g2", T0 + 1_000, "dev"],
          ["g4", T0 + 3_000, "dev"],
          ["prod", T0 + 9_000, "prod"],
        ] as const) {
          const { processes, graph } = workflow(colonyname, at, 1);
          await store.addProcesses(processes, graph);
          made[name] = graph;
        }
        const graphs = (state: ProcessState, count = 10, colonyname = "dev") =>
          store.listGraphs({ colonyname, state, count });
        const idsOf = (...keys: string[]) => keys.map((k) => made[k]!.processgraphid);
        expect((await graphs(WAITING)).map((g) => g.processgraphid)).toEqual(idsOf("g4", "g3", "g2", "g1"));
        expect(await graphs(WAITING, 2)).toStrictEqual([made.g4, made.g3]);
        expect((await graphs(WAITING, 10, "prod")).map((g) => g.processgraphid)).toEqual(idsOf("prod"));

        await store.updateGraph({ ...made.g3!, state: RUNNING, starttime: timeString(T0 + 10_000) });
        await store.updateGraph({ ...made.g1!, state: SUCCESS, endtime: timeString(T0 + 20_000) });
        expect((await graphs(WAITING)).map((g) => g.processgraphid)).toEqual(idsOf("g4", "g2"));
        expect((await graphs(RUNNING)).map((g) => g.processgraphid)).toEqual(idsOf("g3"));
        expect((await graphs(SUCCESS)).map((g) => g.processgraphid)).toEqual(idsOf("g1"));
        expect(await graphs(FAILED)).toEqual([]);
      });

      it("counts a colony's processes and graphs by state", async () => {
        expect(await store.countByState("dev")).toEqual({ processes: [0, 0, 0, 0], graphs: [0, 0, 0, 0] });
        const { processes, graph } = workflow("dev", T0, 3);
        await store.addProcesses(processes, graph);
        await store.addProcesses(workflow("prod", T0, 2).processes, workflow("prod", T0).graph);
        await store.updateProcesses([{ ...processes[0]!, state: SUCCESS }]);
        await store.updateGraph({ ...graph, state: RUNNING });
        expect(await store.countByState("dev")).toEqual({ processes: [2, 0, 1, 0], graphs: [0, 1, 0, 0] });
      });
    });

    describe("logs", () => {
      const ns = (ms: number) => ms * 1_000_000;

      it("returns a process's log entries oldest first, after `since` (ns), up to count", async () => {
        const [p, q] = [newId(), newId()];
        const entries = [
          log(p, "third", ns(T0 + 3)),
          log(p, "first", ns(T0 + 1)),
          log(q, "other process", ns(T0 + 2)),
          log(p, "second", ns(T0 + 2)),
          log(p, "second, added later", ns(T0 + 2)),
          log(p, "fourth", ns(T0 + 4)),
        ];
        for (const entry of entries) await store.addLog(entry);
        const messages = async (since: number, count = 100) =>
          (await store.getLogs({ processid: p, since, count })).map((e) => e.message);
        expect(await messages(0)).toEqual(["first", "second", "second, added later", "third", "fourth"]);
        expect(await messages(0, 2)).toEqual(["first", "second"]);
        expect(await messages(ns(T0 + 2))).toEqual(["third", "fourth"]);
        // 1 µs before: ns timestamps near 1.7e18 are doubles 256 ns apart
        expect(await messages(ns(T0 + 2) - 1_000)).toEqual([
          "second",
          "second, added later",
          "third",
          "fourth",
        ]);
        expect(await messages(ns(T0 + 4))).toEqual([]);
        expect(await store.getLogs({ processid: p, since: 0, count: 100 })).toStrictEqual([
          entries[1],
          entries[3],
          entries[4],
          entries[0],
          entries[5],
        ]);
        expect(await store.getLogs({ processid: q, since: 0, count: 100 })).toStrictEqual([entries[2]]);
        expect(await store.getLogs({ processid: newId(), since: 0, count: 100 })).toEqual([]);
      });

      it("keeps any message exactly", async () => {
        const p = newId();
        const odd = log(p, 'line 1\nline 2\ttab "quoted" \\ héllo ✓ 😀 nul\u0000byte \' ; --', ns(T0));
        const empty = log(p, "", ns(T0 + 1));
        await store.addLog(odd);
        await store.addLog(empty);
        expect(await store.getLogs({ processid: p, since: 0, count: 10 })).toStrictEqual([odd, empty]);
      });
    });

    describe("keyed objects (users, attributes, functions)", () => {
      it("puts, replaces, gets, lists per colony and kind in first-put order, deletes; a colony takes its own along", async () => {
        const alice = { name: "alice", email: "a@x" };
        await store.addColony(colony("dev"));
        await store.putObject("user", "u1", "dev", alice);
        await store.putObject("user", "u2", "dev", { name: "bob" });
        await store.putObject("function", "u1", "dev", { funcname: "same id, other kind" });
        await store.putObject("user", "u3", "other", { name: "carol" });
        await store.putObject("user", "u1", "dev", { ...alice, email: "new@x" }); // replaced, keeps its place
        expect(await store.getObject("user", "u1")).toEqual({ name: "alice", email: "new@x" });
        expect(await store.getObject("user", "missing")).toBeUndefined();
        expect((await store.listObjects<{ name: string }>("user", "dev")).map((u) => u.name)).toEqual([
          "alice",
          "bob",
        ]);
        expect(await store.listObjects("function", "dev")).toEqual([{ funcname: "same id, other kind" }]);
        expect(await store.deleteObject("user", "u2")).toBe(true);
        expect(await store.deleteObject("user", "u2")).toBe(false);
        await store.removeColony("dev");
        expect(await store.listObjects("user", "dev")).toEqual([]);
        expect(await store.getObject("function", "u1")).toBeUndefined();
        expect(await store.listObjects("user", "other")).toEqual([{ name: "carol" }]);
      });
    });

    describe("keyed objects across colonies and executors", () => {
      it("never replaces another colony's object, nor another executor's function, under the same id", async () => {
        expect(await store.putObject("user", "u1", "dev", { name: "alice" })).toBe(true);
        expect(await store.putObject("user", "u1", "other", { name: "mallory" })).toBe(false);
        expect(await store.getObject("user", "u1")).toEqual({ name: "alice" });
        expect(await store.listObjects("user", "other")).toEqual([]);
        const fn = (executorname: string, description: string) => ({
          executorname,
          funcname: "f",
          description,
        });
        expect(await store.putObject("function", "f1", "dev", fn("e1", "mine"))).toBe(true);
        expect(await store.putObject("function", "f1", "dev", fn("e2", "theirs"))).toBe(false);
        expect(await store.putObject("function", "f1", "other", fn("e1", "elsewhere"))).toBe(false);
        expect(await store.getObject("function", "f1")).toEqual(fn("e1", "mine"));
        expect(await store.putObject("function", "f1", "dev", fn("e1", "updated"))).toBe(true);
        expect(await store.getObject("function", "f1")).toEqual(fn("e1", "updated"));
        expect(await store.listObjects("function", "dev")).toEqual([fn("e1", "updated")]);
      });
    });

    describe("membership", () => {
      it("reads the colony, the user and the executor of an id at once, whatever their colony", async () => {
        const e = executor("other", "worker-1");
        const dev = colony("dev");
        await store.addColony(dev);
        await store.addExecutor(e);
        await store.putObject("user", "u1", "dev", { colonyname: "dev", userid: "u1", name: "alice" });
        expect(await store.membership("dev", e.executorid)).toStrictEqual({
          colony: dev,
          user: undefined,
          executor: e,
        });
        expect(await store.membership("dev", "u1")).toMatchObject({
          colony: dev,
          user: { name: "alice" },
          executor: undefined,
        });
        expect(await store.membership("nope", "u2")).toStrictEqual({
          colony: undefined,
          user: undefined,
          executor: undefined,
        });
      });
    });

    describe("removal in bulk", () => {
      it("removes a colony's processes outside workflows, of one state or all, with their logs", async () => {
        const [a, b] = [proc({ func: "a" }), proc({ func: "b", at: T0 + 1 })];
        const other = proc({ func: "other", colony: "other" });
        const { processes, graph } = workflow("dev", T0, 2);
        await store.addProcesses([a, b, other]);
        await store.addProcesses(processes, graph);
        await store.updateProcesses([finished(b, SUCCESS, T0 + 5)]);
        await store.addLog(log(b.processid, "gone with it", T0 * 1_000_000));
        expect(await store.removeProcesses({ colonyname: "dev", state: SUCCESS })).toBe(1);
        expect(await store.getProcess(b.processid)).toBeUndefined();
        expect(await store.getLogs({ processid: b.processid, since: 0, count: 10 })).toEqual([]);
        expect(await store.removeProcesses({ colonyname: "dev" })).toBe(1);
        expect(await store.getProcess(a.processid)).toBeUndefined();
        // a workflow's processes and another colony's stay
        expect(sorted(pids(await store.getProcesses(pids(processes))))).toEqual(sorted(pids(processes)));
        expect(await store.getProcess(other.processid)).toBeDefined();
      });

      it("removes graphs with their processes: one by id, or a colony's of one state", async () => {
        const first = workflow("dev", T0, 2);
        const second = workflow("dev", T0 + 1, 3);
        await store.addProcesses(first.processes, first.graph);
        await store.addProcesses(second.processes, second.graph);
        await store.updateGraph({ ...second.graph, state: FAILED });
        expect(await store.removeGraphs({ processgraphid: first.graph.processgraphid })).toBe(1);
        expect(await store.getGraph(first.graph.processgraphid)).toBeUndefined();
        expect(await store.getProcesses(pids(first.processes))).toEqual([]);
        expect(await store.removeGraphs({ colonyname: "dev", state: WAITING })).toBe(0);
        expect(await store.removeGraphs({ colonyname: "dev", state: FAILED })).toBe(1);
        expect(await store.getProcesses(pids(second.processes))).toEqual([]);
        expect(await store.removeGraphs({ colonyname: "dev" })).toBe(0);
      });
    });

    describe("channels", () => {
      const entry = (senderid: string, sequence: number, text: string): ChannelEntry => ({
        sequence,
        timestamp: "2026-11-23T10:00:00.000000Z",
        senderid,
        payload: Buffer.from(text).toString("base64"),
      });
      const texts = (entries: ChannelEntry[]) =>
        entries.map((e) => Buffer.from(e.payload, "base64").toString());

      it("appends in arrival order and reads from a position, with a limit; a repeated (sender, sequence) is kept once", async () => {
        const p = proc();
        await store.addProcesses([p]);
        await store.appendChannel(p.processid, "dev", "chat", entry("alice", 1, "a1"));
        await store.appendChannel(p.processid, "dev", "chat", entry("bob", 1, "b1"));
        await store.appendChannel(p.processid, "dev", "chat", entry("alice", 1, "a1 again"));
        await store.appendChannel(p.processid, "dev", "chat", { ...entry("alice", 2, "a2"), inreplyto: 1 });
        await store.appendChannel(p.processid, "dev", "other", entry("alice", 1, "elsewhere"));
        expect(texts(await store.readChannel(p.processid, "chat", 0, 0))).toEqual(["a1", "b1", "a2"]);
        expect(texts(await store.readChannel(p.processid, "chat", 1, 0))).toEqual(["b1", "a2"]);
        expect(texts(await store.readChannel(p.processid, "chat", 1, 1))).toEqual(["b1"]);
        expect(await store.readChannel(p.processid, "chat", 3, 0)).toEqual([]);
        expect((await store.readChannel(p.processid, "chat", 2, 0))[0]).toStrictEqual({
          ...entry("alice", 2, "a2"),
          inreplyto: 1,
        });
        expect(texts(await store.readChannel(p.processid, "other", 0, 0))).toEqual(["elsewhere"]);
      });

      it("removes a process's channels with it, and with its colony", async () => {
        const [a, b] = [proc({ func: "a" }), proc({ func: "b" })];
        await store.addProcesses([a, b]);
        await store.appendChannel(a.processid, "dev", "chat", entry("alice", 1, "x"));
        await store.appendChannel(b.processid, "dev", "chat", entry("alice", 1, "y"));
        await store.removeProcess(a.processid);
        expect(await store.readChannel(a.processid, "chat", 0, 0)).toEqual([]);
        await store.removeColony("dev");
        expect(await store.readChannel(b.processid, "chat", 0, 0)).toEqual([]);
      });
    });

    it.skipIf(!target.reopen)("keeps what it recorded across a restart", async () => {
      const c = colony("dev");
      const e = executor("dev", "worker-1");
      const full = fullProcess();
      const waiting = proc({ func: "waiting", at: T0 + 1 });
      const { processes, graph } = workflow("dev", T0, 2);
      const entry = log(full.processid, "kept", (T0 + 123) * 1_000_000 + 456_789);
      await store.addColony(c);
      await store.addExecutor(e);
      await store.addProcesses([full, waiting]);
      await store.addProcesses(processes, graph);
      await store.addLog(entry);
      const running = (await store.assign(requestOf(e), (p) => started(p, e.executorid, T0 + 7)))!;
      await store.close();
      store = await (target.reopen as () => Promise<QueueStore>)();
      expect(await store.getColony("dev")).toStrictEqual(c);
      expect(await store.getExecutorById(e.executorid)).toStrictEqual(e);
      expect(await store.getProcess(full.processid)).toStrictEqual(full);
      expect(await store.getProcess(running.processid)).toStrictEqual(running);
      expect(await store.getGraph(graph.processgraphid)).toStrictEqual(graph);
      expect(await store.getLogs({ processid: full.processid, since: 0, count: 10 })).toStrictEqual([entry]);
      expect(await list(RUNNING)).toStrictEqual([running]);
      expect(running.processid).toBe(processes[0]!.processid); // submitted first
      const next = await store.assign(requestOf(e), (p) => started(p, e.executorid, T0 + 8));
      expect(next?.processid).toBe(waiting.processid);
      await expect(store.addColony(colony("dev"))).rejects.toBeInstanceOf(ConflictError);
    });
  });
}
