import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stateDir } from "../../config.js";
import type { EnvType } from "../instance.js";

/** What the process runtime records about an instance, so any process can find it by name. */
export interface ProcessRecord {
  name: string;
  pid: number;
  port: number;
  envPath: string;
  envName: string;
  envType: EnvType;
  startedAt: string;
  labels: Record<string, string>;
}

/** The folder holding process instances' records and logs: `<state dir>/process`. */
export function processRoot(): string {
  return join(stateDir(), "process");
}

export function instanceDir(name: string): string {
  return join(processRoot(), name);
}

export async function readRecord(name: string): Promise<ProcessRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(instanceDir(name), "state.json"), "utf8")) as ProcessRecord;
  } catch {
    return undefined;
  }
}

export async function writeRecord(record: ProcessRecord): Promise<void> {
  const dir = instanceDir(record.name);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, "state.json.tmp");
  await writeFile(tmp, JSON.stringify(record, null, 2));
  await rename(tmp, join(dir, "state.json")); // atomic: readers never see half a record
}

export async function listRecords(): Promise<ProcessRecord[]> {
  const names = await readdir(processRoot()).catch(() => [] as string[]);
  const records = await Promise.all(names.map((name) => readRecord(name)));
  return records.filter((r): r is ProcessRecord => r !== undefined);
}

export async function removeInstanceDir(name: string): Promise<void> {
  await rm(instanceDir(name), { recursive: true, force: true });
}
