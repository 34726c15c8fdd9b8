import type { Process, ProcessState } from "./model.js";
import { CANCELLED, FAILED, RUNNING, SUCCESS, WAITING, ZERO_TIME, timeString } from "./model.js";
import { RpcError } from "./envelope.js";

/**
 * How a process changes state: pure functions from one stored version to the next, so
 * the server's handlers and the store's atomic updates agree on every field.
 */

/** A process just assigned: RUNNING, its execution deadline set when it has one. */
export function started(process: Process, executorid: string, now: number): Process {
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

/**
 * A process given back because its executor never got it: WAITING and unassigned as it
 * was, without counting a retry (the executor never ran it).
 */
export function givenBack(process: Process): Process {
  return {
    ...process,
    state: WAITING,
    isassigned: false,
    assignedexecutorid: "",
    starttime: ZERO_TIME,
    execdeadline: ZERO_TIME,
  };
}

/** A process cancelled now: never assigned again, no deadlines. */
export function cancelled(process: Process, now: number): Process {
  return {
    ...process,
    state: CANCELLED,
    endtime: timeString(now),
    execdeadline: ZERO_TIME,
    waitdeadline: ZERO_TIME,
  };
}

export function finished(state: ProcessState): boolean {
  return state === SUCCESS || state === FAILED || state === CANCELLED;
}

export function stateName(state: ProcessState): string {
  return ["WAITING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED"][state] ?? String(state);
}

export function stateOf(value: number): ProcessState {
  if (value === WAITING || value === RUNNING || value === SUCCESS || value === FAILED || value === CANCELLED)
    return value;
  throw new RpcError(400, "state must be 0 (waiting), 1 (running), 2 (success), 3 (failed) or 4 (cancelled)");
}

/**
 * Refuses a workflow whose dependencies form a cycle. Iterative (Kahn's order), so a
 * chain of any length a request can carry is checked without deepening the stack.
 */
export function rejectCycles(processes: readonly Process[]): void {
  const waitingOn = new Map(processes.map((p) => [p.processid, p.parents.length]));
  const ready = processes.filter((p) => p.parents.length === 0);
  const byId = new Map(processes.map((p) => [p.processid, p]));
  let ordered = 0;
  for (let next = ready.pop(); next; next = ready.pop()) {
    ordered++;
    for (const child of next.children) {
      const left = (waitingOn.get(child) ?? 0) - 1;
      waitingOn.set(child, left);
      const process = byId.get(child);
      if (left === 0 && process) ready.push(process);
    }
  }
  if (ordered === processes.length) return;
  const stuck = processes.find((p) => (waitingOn.get(p.processid) ?? 0) > 0);
  throw new RpcError(400, `the workflow has a cycle through ${stuck?.spec.nodename ?? "its nodes"}`);
}
