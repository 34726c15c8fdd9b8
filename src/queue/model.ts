import { createHash, randomUUID } from "node:crypto";

/**
 * The ColonyOS objects as they travel on the wire (docs/colonyos-protocol.md §4): the
 * field names are the protocol's, so existing clients (pycolonies, the colonies CLI)
 * read them unchanged.
 */

export const WAITING = 0;
export const RUNNING = 1;
export const SUCCESS = 2;
export const FAILED = 3;
/** Cancelled by a member (ColonyOS' newest servers have the state; its number is ours, see the protocol notes). */
export const CANCELLED = 4;
export type ProcessState =
  typeof WAITING | typeof RUNNING | typeof SUCCESS | typeof FAILED | typeof CANCELLED;

export const PENDING = 0;
export const APPROVED = 1;
export const REJECTED = 2;

export interface Colony {
  colonyid: string;
  name: string;
}

export interface Executor {
  executorid: string;
  executortype: string;
  executorname: string;
  colonyname: string;
  state: number;
  requirefuncreg: boolean;
  commissiontime: string;
  lastheardfromtime: string;
  location: { long: number; lat: number; name: string; desc: string };
  capabilities: { hardware: unknown[]; software: unknown[] };
  allocations: { projects: Record<string, unknown> };
}

export interface Conditions {
  colonyname: string;
  executornames: string[];
  executortype: string;
  dependencies: string[];
  nodes: number;
  cpu: string;
  processes: number;
  processespernode: number;
  mem: string;
  storage: string;
  gpu: { name: string; mem: string; count: number; nodecount: number };
  walltime: number;
}

export interface FunctionSpec {
  nodename: string;
  funcname: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  priority: number;
  maxwaittime: number;
  maxexectime: number;
  maxretries: number;
  conditions: Conditions;
  label: string;
  fs: { mount: string; snapshots: unknown[]; dirs: unknown[] };
  env: Record<string, string>;
  /** Channels the process's initiator and executor talk over (`channelappendmsg`). */
  channels?: string[];
}

/** One message of a channel (`payload` base64, as Go encodes `[]byte`). */
export interface ChannelEntry {
  sequence: number;
  inreplyto?: number;
  timestamp: string;
  senderid: string;
  payload: string;
}

export interface Process {
  processid: string;
  initiatorid: string;
  initiatorname: string;
  assignedexecutorid: string;
  isassigned: boolean;
  state: ProcessState;
  prioritytime: number;
  submissiontime: string;
  starttime: string;
  endtime: string;
  waitdeadline: string;
  execdeadline: string;
  retries: number;
  attributes: unknown[];
  spec: FunctionSpec;
  waitforparents: boolean;
  parents: string[];
  children: string[];
  processgraphid: string;
  in: unknown[];
  out: unknown[];
  errors: string[];
}

export interface ProcessGraph {
  processgraphid: string;
  initiatorid: string;
  initiatorname: string;
  colonyname: string;
  rootprocessids: string[];
  state: ProcessState;
  submissiontime: string;
  starttime: string;
  endtime: string;
  processids: string[];
  nodes: unknown[];
  edges: unknown[];
}

export interface User {
  colonyname: string;
  userid: string;
  name: string;
  email: string;
  phone: string;
}

/** 0 IN, 1 OUT, 2 ERR, 3 ENV. */
export interface Attribute {
  attributeid: string;
  targetid: string;
  targetcolonyname: string;
  targetprocessgraphid: string;
  state: number;
  attributetype: number;
  key: string;
  value: string;
}

/** A function an executor says it runs. */
export interface RegisteredFunction {
  functionid: string;
  executorname: string;
  executortype: string;
  colonyname: string;
  funcname: string;
  description: string;
  args: unknown[];
  counter: number;
  minwaittime: number;
  maxwaittime: number;
  minexectime: number;
  maxexectime: number;
  avgwaittime: number;
  avgexectime: number;
}

export interface LogEntry {
  processid: string;
  colonyname: string;
  executorname: string;
  message: string;
  timestamp: number;
}

/** Go's zero time, which ColonyOS sends for "not set". */
export const ZERO_TIME = "0001-01-01T00:00:00Z";

const DAY_NS = 86_400_000_000_000;

/** RFC 3339 with microseconds, as the Go server's Postgres-backed replies carry. */
export function timeString(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** Milliseconds of a protocol time (the zero time: undefined). */
export function timeMs(value: string): number | undefined {
  if (!value || value.startsWith("0001-01-01")) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Lowercase hex of SHA3-256 of a text. */
export function sha3Hex(text: string): string {
  return createHash("sha3-256").update(text, "utf8").digest("hex");
}

/** A new server-minted id: SHA3-256 of a random UUID, as the Go server mints them. */
export function newId(): string {
  return sha3Hex(randomUUID());
}

/**
 * A function spec with every field present: clients send partial specs (and Python ones
 * `null` for what they leave unset), replies must carry them all.
 */
export function completeSpec(
  input: Partial<Omit<FunctionSpec, "conditions">> & { conditions?: Partial<Conditions> | null },
): FunctionSpec {
  const c: Partial<Conditions> = input.conditions ?? {};
  return {
    nodename: input.nodename ?? "",
    funcname: input.funcname ?? "",
    args: input.args ?? [],
    kwargs: input.kwargs ?? {},
    priority: input.priority ?? 0,
    maxwaittime: input.maxwaittime ?? -1,
    maxexectime: input.maxexectime ?? -1,
    maxretries: input.maxretries ?? -1,
    conditions: {
      colonyname: c.colonyname ?? "",
      executornames: c.executornames ?? [],
      executortype: c.executortype ?? "",
      dependencies: c.dependencies ?? [],
      nodes: c.nodes ?? 0,
      cpu: c.cpu ?? "",
      processes: c.processes ?? 0,
      processespernode: c.processespernode ?? 0,
      mem: c.mem ?? "",
      storage: c.storage ?? "",
      gpu: { name: "", mem: "", count: 0, nodecount: 0, ...(c.gpu ?? {}) },
      walltime: c.walltime ?? 0,
    },
    label: input.label ?? "",
    fs: { mount: "", snapshots: [], dirs: [], ...(input.fs ?? {}) },
    env: input.env ?? {},
    ...(input.channels?.length ? { channels: input.channels } : {}),
  };
}

/** A new WAITING process of `spec`, submitted now: its priority time is worth one day per priority point. */
export function newProcess(
  spec: FunctionSpec,
  initiator: { id: string; name: string },
  now: number,
  graph?: { id: string; waitforparents: boolean },
): Process {
  return {
    processid: newId(),
    initiatorid: initiator.id,
    initiatorname: initiator.name,
    assignedexecutorid: "",
    isassigned: false,
    state: WAITING,
    prioritytime: now * 1_000_000 - spec.priority * DAY_NS,
    submissiontime: timeString(now),
    starttime: ZERO_TIME,
    endtime: ZERO_TIME,
    waitdeadline: spec.maxwaittime > 0 ? timeString(now + spec.maxwaittime * 1000) : ZERO_TIME,
    execdeadline: ZERO_TIME,
    retries: 0,
    attributes: [],
    spec,
    waitforparents: graph?.waitforparents ?? false,
    parents: [],
    children: [],
    processgraphid: graph?.id ?? "",
    in: [],
    out: [],
    errors: [],
  };
}
