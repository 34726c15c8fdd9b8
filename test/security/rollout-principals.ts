import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killAndWait } from "../helpers/client-process.js";
import type { Service } from "../helpers/service.js";
import { call, serve } from "../helpers/service.js";

/** The keys of the security tests' principals: alice and bob (plain keys), carol (local allowed), the admin. */
export const KEYS = {
  admin: "admin-key-0123456789abcdef",
  alice: "alice-key-0123456789abcdef",
  bob: "bob-key-0123456789abcdef00",
  carol: "carol-key-0123456789abcdef",
  docker: "dock-key-0123456789abcdef0",
} as const;

export type Who = keyof typeof KEYS;

/** A service started with principals A (alice) and B (bob), and its state folder. */
export interface SecuredService extends Service {
  /** The service's state: its database and its disks. */
  stateDir: string;
  /** One request as `who`. */
  as(who: Who, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }>;
  stop(): Promise<void>;
}

/**
 * `afs serve` with `--api-keys`: alice and bob get the default (every container type but
 * `local`), carol is allowed `local` and `docker` by the operator, `docker` only docker
 * and the `shell` entry.
 */
export async function securedService(...extra: string[]): Promise<SecuredService> {
  const stateDir = mkdtempSync(join(tmpdir(), "affinetes-sec-"));
  const keysFile = join(stateDir, "keys.json");
  writeFileSync(
    keysFile,
    JSON.stringify({
      [KEYS.alice]: "alice",
      [KEYS.bob]: { name: "bob" },
      [KEYS.carol]: { name: "carol", allow: { container_types: ["local", "docker"] } },
      [KEYS.docker]: { name: "dora", allow: { container_types: ["docker"], environments: ["shell"] } },
    }),
  );
  const envsFile = join(stateDir, "envs.json");
  writeFileSync(
    envsFile,
    JSON.stringify({
      shell: { container_type: "docker", image: "affinetes/python:3.11" },
      other: { container_type: "docker", image: "affinetes/python:3.11" },
    }),
  );
  mkdirSync(join(stateDir, "disks"));
  const service = await serve(
    "--db",
    join(stateDir, "service.db"),
    "--disks-dir",
    join(stateDir, "disks"),
    "--api-key",
    KEYS.admin,
    "--api-keys",
    keysFile,
    "--environments",
    envsFile,
    ...extra,
  );
  return {
    ...service,
    stateDir,
    as: (who, path, body) => call(service, path, body, { authorization: `Bearer ${KEYS[who]}` }),
    stop: async () => {
      await killAndWait(service.child, "SIGTERM");
    },
  };
}
