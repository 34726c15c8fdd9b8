import { readFileSync } from "node:fs";
import { RecordFolder } from "../record-folder.js";
import { processIsAlive } from "../labels.js";
import type { EnvType } from "../instance.js";
import type { SandboxNetwork } from "../sandbox-network.js";
import type { Isolation } from "./isolation.js";

/** What the process runtime records about an instance, so any process can find it by name. */
export interface ProcessRecord {
  name: string;
  pid: number;
  port: number;
  envPath: string;
  envName: string;
  envType: EnvType;
  startedAt: string;
  /** The process's start time in clock ticks since boot (Linux), so a reused pid is never taken for it. */
  startTicks?: number;
  labels: Record<string, string>;
  /** The token its method server requires; the record is written 0600, readable by its owner only. */
  authToken?: string;
  /** How a sandbox's commands are confined; absent: plain processes. */
  isolation?: Isolation;
  /** A sandbox's own network namespace; absent: the host's network. */
  network?: SandboxNetwork;
  /** The tag on everything started for the instance (its commands, slirp4netns); absent in older records. */
  tag?: string;
  /** A sandbox's variables, for every command, also after adoption by another client. */
  envVars?: Record<string, string>;
  /** A task's ports (`spec.ports`): on this machine's loopback, as it shares the host's network. */
  ports?: number[];
}

/** Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat); undefined off Linux. */
export function processStartTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[19]);
    return Number.isFinite(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the process a record describes still runs: same pid and, where known, same start time. */
export function recordIsAlive(record: ProcessRecord): boolean {
  if (!(record.pid > 1) || !processIsAlive(record.pid)) return false;
  return record.startTicks === undefined || processStartTicks(record.pid) === record.startTicks;
}

/** The records of process instances: `<state dir>/process/<name>/state.json`. */
const records = new RecordFolder<ProcessRecord>("process");

/** The folder holding process instances' records and logs: `<state dir>/process`. */
export function processRoot(): string {
  return records.root;
}

export function instanceDir(name: string): string {
  return records.dir(name);
}

export function readRecord(name: string): Promise<ProcessRecord | undefined> {
  return records.read(name);
}

export function writeRecord(record: ProcessRecord): Promise<void> {
  return records.write(record);
}

export function listRecords(): Promise<ProcessRecord[]> {
  return records.list();
}

export function removeInstanceDir(name: string): Promise<void> {
  return records.remove(name);
}
