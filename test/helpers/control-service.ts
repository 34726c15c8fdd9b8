import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { request } from "undici";
import { Client } from "../../src/index.js";
import { killAndWait } from "./client-process.js";
import type { Service } from "./service.js";
import { serve } from "./service.js";

/** API keys of the principals a control-plane attack test runs as. */
export const controlKeys = {
  admin: "admin-key-0123456789abcdef",
  alice: "alice-key-0123456789abcdef",
  bob: "bob-key-0123456789abcdef00",
  constructor: "ctor-key-0123456789abcdef0",
  proto: "proto-key-0123456789abcdef",
} as const;

/** A real `afs serve` with principals alice, bob, `constructor` and `__proto__` (and the admin). */
export interface ControlService extends AsyncDisposable {
  service: Service;
  url: string;
  /** Where its disks keep their folders. */
  disksDir: string;
  clients: Record<keyof typeof controlKeys, Client>;
  /** One raw request as `who`, for answers the SDK would turn into exceptions. */
  raw(
    who: keyof typeof controlKeys,
    method: string,
    path: string,
    options?: {
      body?: string | Buffer | Readable;
      contentType?: string;
      headers?: Record<string, string>;
    },
  ): Promise<{ status: number; body: unknown; text: string }>;
}

/** Starts the service with `args` added; disposing deletes its containers and stops it. */
export async function serveControl(...args: string[]): Promise<ControlService> {
  const dir = mkdtempSync(join(tmpdir(), "affinetes-control-sec-"));
  const keysFile = join(dir, "keys.json");
  writeFileSync(
    keysFile,
    JSON.stringify({
      [controlKeys.alice]: "alice",
      [controlKeys.bob]: "bob",
      [controlKeys.constructor]: "constructor",
      [controlKeys.proto]: "__proto__",
    }),
  );
  const disksDir = join(dir, "disks");
  const service = await serve(
    "--api-key",
    controlKeys.admin,
    "--api-keys",
    keysFile,
    "--disks-dir",
    disksDir,
    "--service-id",
    `control-sec-${process.pid}-${Date.now()}`,
    ...args,
  );
  const clients = Object.fromEntries(
    Object.entries(controlKeys).map(([who, apiKey]) => [who, new Client({ url: service.url, apiKey })]),
  ) as ControlService["clients"];
  return {
    service,
    url: service.url,
    disksDir,
    clients,
    raw: async (who, method, path, options = {}) => {
      const res = await request(`${service.url}${path}`, {
        method: method as "GET",
        headers: {
          authorization: `Bearer ${controlKeys[who]}`,
          ...(options.contentType ? { "content-type": options.contentType } : {}),
          ...options.headers,
        },
        ...(options.body !== undefined ? { body: options.body } : {}),
      });
      const text = await res.body.text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      return { status: res.statusCode, body, text };
    },
    [Symbol.asyncDispose]: async () => {
      for (const c of await clients.admin.containers.list().catch(() => []))
        await c.delete().catch(() => undefined);
      await Promise.all(Object.values(clients).map((c) => c.close()));
      await killAndWait(service.child, "SIGTERM");
    },
  };
}
