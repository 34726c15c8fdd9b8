import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { hasPostgres, isolatedSchema } from "../helpers/postgres.js";

/** A fresh, empty database of one engine for one test, and how to remove it. */
export interface StoreTarget {
  name: "sqlite" | "postgres";
  fresh(): Promise<{ location: string; drop: () => Promise<void> }>;
}

const sqlite: StoreTarget = {
  name: "sqlite",
  fresh: async () => {
    const location = join(mkdtempSync(join(tmpdir(), "affinetes-store-")), "service.db");
    return { location, drop: async () => rmSync(dirname(location), { recursive: true, force: true }) };
  },
};

let schemas = 0;
const postgres: StoreTarget = {
  name: "postgres",
  fresh: async () => {
    const { url, drop } = await isolatedSchema(`store_${++schemas}`);
    return { location: url, drop };
  },
};

/** Every engine this machine has: SQLite always, PostgreSQL when it answers. */
export const storeTargets: StoreTarget[] = hasPostgres ? [sqlite, postgres] : [sqlite];
