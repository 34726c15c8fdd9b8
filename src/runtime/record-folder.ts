import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stateDir } from "../config.js";

/**
 * Instances' records of a runtime without a daemon to ask (process, slurm): one folder
 * per instance under `<state dir>/<kind>`, holding `state.json` and its logs, so any
 * process finds any instance by name.
 */
export class RecordFolder<T extends { name: string }> {
  constructor(private readonly kind: string) {}

  get root(): string {
    return join(stateDir(), this.kind);
  }

  dir(name: string): string {
    return join(this.root, name);
  }

  async read(name: string): Promise<T | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir(name), "state.json"), "utf8")) as T;
    } catch {
      return undefined;
    }
  }

  async write(record: T): Promise<void> {
    const dir = this.dir(record.name);
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `state.json.${randomBytes(6).toString("hex")}.tmp`);
    // Owner-only: a record may hold its method server's token. A new file, so the mode holds.
    await writeFile(tmp, JSON.stringify(record, null, 2), { mode: 0o600, flag: "wx" });
    await rename(tmp, join(dir, "state.json")); // atomic: readers never see half a record
  }

  async list(): Promise<T[]> {
    const names = await readdir(this.root).catch(() => [] as string[]);
    const records: (T | undefined)[] = await Promise.all(names.map((name) => this.read(name)));
    return records.filter((r): r is T => r !== undefined);
  }

  async remove(name: string): Promise<void> {
    await rm(this.dir(name), { recursive: true, force: true });
  }

  /** For exit handlers, which cannot wait. */
  removeSync(name: string): void {
    rmSync(this.dir(name), { recursive: true, force: true });
  }
}
