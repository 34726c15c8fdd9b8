import Docker from "dockerode";
import pg from "pg";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasDocker, testBaseImage } from "../helpers/docker.js";
import type { ControlService } from "../helpers/control-service.js";
import { controlKeys, serveControl } from "../helpers/control-service.js";
import { hasPostgres, postgresUrl } from "../helpers/postgres.js";

const MiB = 2 ** 20;

/**
 * One bad request to a `/v1/` route. `{disk}` in a path is alice's disk's id, `{bobs}`
 * bob's, `{ctr}` alice's container's; `raw` is a body JSON.stringify cannot write.
 */
interface Case {
  name: string;
  method: "GET" | "POST" | "PUT" | "DELETE" | "PATCH";
  path: string;
  body?: unknown;
  raw?: string | Buffer | (() => Readable);
  contentType?: string;
  /** As whom (default alice); `none` sends no key. */
  as?: keyof typeof controlKeys | "none";
  status: number;
  /** What the message says, when it matters. */
  message?: RegExp;
  /**
   * A body refused while it streams: fastify answers and closes the connection (the client
   * may send more), so a client still writing may see the close (EPIPE) instead of the answer.
   */
  closes?: boolean;
}

const json = (method: Case["method"], path: string, body: unknown, status = 400, message?: RegExp): Case => ({
  name: `${method} ${path} ${JSON.stringify(body)?.slice(0, 60)}`,
  method,
  path,
  body,
  status,
  ...(message ? { message } : {}),
});
const container = (name: string, fields: Record<string, unknown>, status = 400, message?: RegExp): Case => ({
  ...json("POST", "/v1/containers", { image: testBaseImage, command: "true", ...fields }, status, message),
  name: `POST /v1/containers: ${name}`,
});
const get = (path: string, status = 400, message?: RegExp): Case => ({
  name: `GET ${path.slice(0, 80)}`,
  method: "GET",
  path,
  status,
  ...(message ? { message } : {}),
});
const upload = (
  path: string,
  raw: Case["raw"],
  contentType: string,
  status: number,
  message?: RegExp,
): Case => ({
  name: `PUT ${path.slice(0, 60)} (${contentType})`,
  method: "PUT",
  path,
  raw,
  contentType,
  status,
  ...(message ? { message } : {}),
});
/** `bytes` of JSON-ish text sent chunked, its length never announced. */
const streamed = (bytes: number) => () => {
  const parts = [
    '{"name":"',
    ...Array.from({ length: Math.ceil(bytes / 65536) }, () => "x".repeat(65536)),
    '"}',
  ];
  return new Readable({
    read() {
      this.push(parts.shift() ?? null);
    },
  }).on("error", () => undefined); // the server may close mid-body: the request reports it
};

const cases: Case[] = [
  // ---- disks
  json("POST", "/v1/disks", {}, 400, /name/),
  json("POST", "/v1/disks", { name: 5 }),
  json("POST", "/v1/disks", { name: "a\u0000b" }),
  json("POST", "/v1/disks", { name: "../escape" }),
  json("POST", "/v1/disks", { name: "a/b" }),
  json("POST", "/v1/disks", { name: "x".repeat(101) }),
  json("POST", "/v1/disks", { name: "disk_0123456789abcdef" }, 400, /disk id/),
  json("POST", "/v1/disks", { name: "ok", size: 10 }, 400, /size/),
  json("POST", "/v1/disks", []),
  json("POST", "/v1/disks", { name: "sweep" }, 409),
  { name: "POST /v1/disks null", method: "POST", path: "/v1/disks", raw: "null", status: 400 },
  { name: "POST /v1/disks malformed JSON", method: "POST", path: "/v1/disks", raw: '{"name":', status: 400 },
  { name: "POST /v1/disks empty JSON body", method: "POST", path: "/v1/disks", raw: "", status: 400 },
  {
    name: "POST /v1/disks __proto__ key",
    method: "POST",
    path: "/v1/disks",
    raw: '{"name":"p","__proto__":{"admin":true}}',
    status: 400,
  },
  {
    name: "POST /v1/disks as text/plain",
    method: "POST",
    path: "/v1/disks",
    raw: "name=x",
    contentType: "text/plain",
    status: 400,
  },
  {
    name: "POST /v1/disks as an unknown content type",
    method: "POST",
    path: "/v1/disks",
    raw: "name=x",
    contentType: "application/x-evil",
    status: 415,
  },
  {
    name: "POST /v1/disks as octet-stream",
    method: "POST",
    path: "/v1/disks",
    raw: '{"name":"s"}',
    contentType: "application/octet-stream",
    status: 400,
  },
  {
    name: "POST /v1/disks 2 MiB of JSON",
    method: "POST",
    path: "/v1/disks",
    raw: JSON.stringify({ name: "x".repeat(2 * MiB) }),
    status: 413,
  },
  {
    name: "POST /v1/disks 2 MiB streamed",
    method: "POST",
    path: "/v1/disks",
    raw: streamed(2 * MiB),
    status: 413,
    closes: true,
  },
  {
    name: "POST /v1/disks without a key",
    method: "POST",
    path: "/v1/disks",
    body: { name: "k" },
    as: "none",
    status: 401,
  },
  get("/v1/disks?all=true"),
  get("/v1/disks/a%00b"),
  get(`/v1/disks/${"x".repeat(400)}`),
  get(`/v1/disks/${"x".repeat(600)}`, 414),
  get("/v1/disks/%E0%A4%A", 400),
  get("/v1/disks/disk_ffffffffffffffff", 404),
  get("/v1/disks/nobody%2Fnothing", 404),
  get("/v1/disks/..", 404),
  { name: "DELETE a disk, force=maybe", method: "DELETE", path: "/v1/disks/{disk}?force=maybe", status: 400 },
  {
    name: "DELETE a disk, force twice",
    method: "DELETE",
    path: "/v1/disks/{disk}?force=true&force=false",
    status: 400,
  },
  { name: "DELETE bob's disk as alice", method: "DELETE", path: "/v1/disks/{bobs}", status: 403 },
  json("PUT", "/v1/disks/{disk}/users", { users: { bob: "admin" } }),
  json("PUT", "/v1/disks/{disk}/users", { users: { "": "read" } }),
  json("PUT", "/v1/disks/{disk}/users", { users: { "a\u0000": "read" } }),
  json("PUT", "/v1/disks/{disk}/users", { users: { "a\nb": "read" } }),
  json("PUT", "/v1/disks/{disk}/users", { users: [] }),
  json("PUT", "/v1/disks/{disk}/users", { users: {}, also: 1 }),
  json("PUT", "/v1/disks/{disk}/users", {
    users: Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`u${i}`, "read"])),
  }),
  json("PUT", "/v1/disks/{bobs}/users", { users: { alice: "write" } }, 403),
  // ---- files
  get("/v1/disks/{disk}/files?path=..", 400, /\.\./),
  get("/v1/disks/{disk}/files?path=a%00b", 400, /NUL/),
  get(`/v1/disks/{disk}/files?path=${"x".repeat(5000)}`),
  get("/v1/disks/{disk}/files?path=a&path=b"),
  get("/v1/disks/{disk}/files?path=/&recursive=1"),
  get("/v1/disks/{disk}/files?path=missing", 404),
  get("/v1/disks/{disk}/files?path=readme.txt", 400, /not a folder/),
  get("/v1/disks/{disk}/files/content?path=missing.txt", 404),
  get("/v1/disks/{disk}/files/content?path=/", 404),
  get("/v1/disks/{disk}/files/content?path=folder", 404),
  get("/v1/disks/{disk}/files/content?path=../../etc/passwd", 400),
  get(`/v1/disks/{disk}/files/content?path=${"n".repeat(300)}`, 400),
  get("/v1/disks/{bobs}/files/content?path=b.txt", 403),
  upload("/v1/disks/{disk}/files/content?path=x", '{"a":1}', "application/json", 400, /octet-stream/),
  upload("/v1/disks/{disk}/files/content?path=x", "text", "text/plain", 400),
  upload("/v1/disks/{disk}/files/content?path=x", "text", "application/x-evil", 415),
  upload("/v1/disks/{disk}/files/content?path=../x", "x", "application/octet-stream", 400),
  upload("/v1/disks/{disk}/files/content?path=/", "x", "application/octet-stream", 400),
  upload("/v1/disks/{disk}/files/content?path=a%00", "x", "application/octet-stream", 400),
  upload("/v1/disks/{disk}/files/content?path=readme.txt/child", "x", "application/octet-stream", 400),
  upload("/v1/disks/{disk}/files/content?path=folder", "x", "application/octet-stream", 400, /folder/),
  upload("/v1/disks/{disk}/files/content?path=big", Buffer.alloc(2 * MiB), "application/octet-stream", 413),
  {
    ...upload("/v1/disks/{disk}/files/content?path=big", streamed(2 * MiB), "application/octet-stream", 413),
    closes: true,
  },
  upload("/v1/disks/{bobs}/files/content?path=x", "x", "application/octet-stream", 403),
  { name: "DELETE the disk's root", method: "DELETE", path: "/v1/disks/{disk}/files?path=/", status: 400 },
  { name: "DELETE ..", method: "DELETE", path: "/v1/disks/{disk}/files?path=a/../..", status: 400 },
  // ---- images
  get("/v1/images/xyz"),
  get(`/v1/images/${"A".repeat(64)}`),
  get(`/v1/images/${"a".repeat(64)}?tag=x`),
  upload("/v1/images/xyz", "x", "application/x-tar", 400, /sha256/),
  upload(`/v1/images/${"a".repeat(64)}`, '{"a":1}', "application/json", 400),
  upload(`/v1/images/${"a".repeat(64)}`, "x", "text/plain", 400),
  upload(`/v1/images/${"a".repeat(64)}`, "x", "image/png", 415),
  upload(`/v1/images/${"a".repeat(64)}`, Buffer.alloc(4096, 1), "application/x-tar", 400, /tar/),
  upload(`/v1/images/${"a".repeat(64)}`, Buffer.alloc(3 * MiB), "application/x-tar", 413),
  // ---- containers
  json("POST", "/v1/containers", {}, 400, /image/),
  container("image a number", { image: 5 }),
  container("NUL in the image", { image: "a\u0000b" }),
  container("image of 600 characters", { image: "a".repeat(600) }),
  container("image not a reference", { image: "UPPER/Case:1" }),
  container("image the engine lacks", { image: "affinetes-nonexistent/none:1" }, 404),
  container("empty command", { command: "" }),
  container("NUL in the command", { command: "echo a\u0000b" }),
  container("command of 300 KiB", { command: "x".repeat(300 * 1024) }),
  container("command of 1.5 MiB (past the body cap)", { command: "x".repeat(1.5 * MiB) }, 413),
  container("initScript without a command", { command: undefined, initScript: "echo" }, 400, /command/),
  container("env name not an identifier", { env: { "1X": "a" } }),
  container("NUL in an env value", { env: { A: "a\u0000" } }),
  container("env value a number", { env: { A: 5 } }),
  container("1001 env variables", {
    env: Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`V${i}`, ""])),
  }),
  container("101 metadata entries", {
    metadata: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`k${i}`, "v"])),
  }),
  container("empty metadata key", { metadata: { "": "x" } }),
  container("NUL in a metadata key", { metadata: { "k\u0000": "x" } }),
  container("vcpuCount -1", { vcpuCount: -1 }),
  container("vcpuCount 0", { vcpuCount: 0 }),
  container("vcpuCount a string", { vcpuCount: "2" }),
  container(
    "vcpuCount past the host's CPUs (the engine refuses)",
    { vcpuCount: 1000 },
    400,
    /engine refused/,
  ),
  container("memSizeMiB 1.5", { memSizeMiB: 1.5 }),
  container("memSizeMiB 1e15", { memSizeMiB: 1e15 }),
  container("memSizeMiB -1", { memSizeMiB: -1 }),
  container("memSizeMiB 5", { memSizeMiB: 5 }),
  container("port 0", { ports: [0] }),
  container("port 70000", { ports: [70000] }),
  container("a port twice", { ports: [8080, 8080] }),
  container("ports a string", { ports: "80" }),
  container("21 ports", { ports: Array.from({ length: 21 }, (_, i) => 9000 + i) }),
  container("relative diskPath", { disk: "sweep", diskPath: "mnt" }),
  container("diskPath with ..", { disk: "sweep", diskPath: "/a/../b" }),
  container("diskPath /", { disk: "sweep", diskPath: "/" }),
  container("a volume of a missing disk", { volumes: { "/data": { disk: "nope" } } }, 404),
  container(
    "a volume over the disk",
    { disk: "sweep", volumes: { "/mnt/disk": { disk: "sweep" } } },
    400,
    /overlap/,
  ),
  container(
    "nested volumes",
    { volumes: { "/a": { disk: "sweep" }, "/a/b": { disk: "sweep" } } },
    400,
    /overlap/,
  ),
  container("readOnly a string", { volumes: { "/x": { disk: "sweep", readOnly: "yes" } } }),
  container("33 volumes", {
    volumes: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`/v${i}`, { disk: "sweep" }])),
  }),
  container("a missing disk", { disk: "nope" }, 404),
  container("another's disk by name", { disk: "bob/b" }, 403),
  container("another's disk by id", { disk: "{bobs}" }, 403),
  container("network partial", { network: "partial" }, 400, /network/),
  container("unknown field", { privileged: true }, 400, /privileged/),
  {
    name: "POST /v1/containers vcpuCount 1e400 (Infinity)",
    method: "POST",
    path: "/v1/containers",
    raw: `{"image":"${testBaseImage}","command":"true","vcpuCount":1e400}`,
    status: 400,
  },
  get("/v1/containers?status=bogus"),
  get("/v1/containers?owner=bob", 400, /owner/),
  get("/v1/containers?status=running&status=exited"),
  get("/v1/containers?metadata.=x"),
  get("/v1/containers?disk=a%00"),
  get("/v1/containers/nope"),
  get("/v1/containers/ctr_ffffffffffffffff", 404),
  { ...get("/v1/containers/{ctr}", 403), as: "bob" },
  { name: "POST stop of a malformed id", method: "POST", path: "/v1/containers/nope/stop", status: 400 },
  {
    name: "POST wait of an unknown id",
    method: "POST",
    path: "/v1/containers/ctr_ffffffffffffffff/wait",
    status: 404,
  },
  { name: "DELETE of a NUL id", method: "DELETE", path: "/v1/containers/ctr_%00", status: 400 },
  get("/v1/containers/{ctr}/logs?tail=-1"),
  get("/v1/containers/{ctr}/logs?tail=1e400"),
  get("/v1/containers/{ctr}/logs?tail=abc"),
  get("/v1/containers/{ctr}/logs?tail=1.5"),
  get("/v1/containers/{ctr}/logs?follow=maybe"),
  get("/v1/containers/{ctr}/logs?since=0"),
  // ---- routes that do not exist
  get("/v1/nope", 404),
  { name: "PATCH /v1/disks", method: "PATCH", path: "/v1/disks", body: {}, status: 404 },
  get("/v1/whoami?as=admin"),
];

/**
 * Every `/v1/` route, sent what a careless or hostile client sends: wrong types, NUL
 * bytes, `..` paths, huge and negative numbers, unknown fields, oversized and streamed
 * bodies, unknown content types. Each answers a typed 4xx `{error: {code, message}}`,
 * never 500; the service keeps serving, and nothing half-made is left behind.
 */
/**
 * The service's database: its SQLite file, or PostgreSQL (which refuses NUL in text: a NUL
 * reaching it was a 500), in a schema of this run's own so other tests' tables stay apart.
 */
const databases = [
  { name: "SQLite", db: async () => [] as string[], drop: async () => undefined },
  ...(hasPostgres ? [postgresSchema()] : []),
];

function postgresSchema() {
  const schema = `control_sweep_${process.pid}_${Date.now()}`;
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  return {
    name: "PostgreSQL",
    db: async () => {
      await admin(`CREATE SCHEMA ${schema}`);
      const url = new URL(postgresUrl);
      url.searchParams.set("options", `-c search_path=${schema}`);
      return ["--db", url.toString()];
    },
    drop: () => admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`),
  };
}

describe.skipIf(!hasDocker).each(databases)(
  "control plane on $name: every bad input gets a typed 4xx",
  (database) => {
    let control: ControlService;
    const ids = { disk: "", bobs: "", ctr: "" };

    beforeAll(async () => {
      control = await serveControl(
        "--max-file-bytes",
        String(MiB),
        "--max-context-bytes",
        String(2 * MiB),
        ...(await database.db()),
      );
      const { alice, bob } = control.clients;
      ids.disk = (await alice.disks.create({ name: "sweep" })).id;
      await alice.disks.writeFile(ids.disk, "readme.txt", "r");
      await alice.disks.writeFile(ids.disk, "folder/inside.txt", "i");
      ids.bobs = (await bob.disks.create({ name: "b" })).id;
      await bob.disks.writeFile(ids.bobs, "b.txt", "b");
      const c = await alice.containers.create({ image: testBaseImage, command: "echo done" });
      await c.wait();
      ids.ctr = c.id;
    });

    afterAll(async () => {
      await control?.[Symbol.asyncDispose]();
      await database.drop();
    });

    it.each(cases)("$name → $status", async (c) => {
      const path = c.path.replace(/\{(disk|bobs|ctr)\}/g, (_, key: keyof typeof ids) => ids[key]);
      const body =
        c.raw !== undefined
          ? typeof c.raw === "function"
            ? c.raw()
            : c.raw
          : c.body !== undefined
            ? JSON.stringify(c.body).replace(/\{(disk|bobs|ctr)\}/g, (_, key: keyof typeof ids) => ids[key])
            : undefined;
      const contentType = c.contentType ?? (body !== undefined ? "application/json" : undefined);
      const sent = request(`${control.url}${path}`, {
        method: c.method,
        headers: {
          ...(c.as !== "none" ? { authorization: `Bearer ${controlKeys[c.as ?? "alice"]}` } : {}),
          ...(contentType ? { "content-type": contentType } : {}),
        },
        ...(body !== undefined ? { body } : {}),
      });
      const answered = sent.then(async (res) => ({ status: res.statusCode, text: await res.body.text() }));
      const res = await answered.catch((err: { code?: string }) => {
        if (c.closes && ["EPIPE", "ECONNRESET", "UND_ERR_SOCKET"].includes(err.code ?? "")) return undefined;
        throw err;
      });
      if (!res) return; // refused mid-body: the connection closed under the client
      const text = res.text;
      expect(res.status, text.slice(0, 300)).toBe(c.status);
      const answer = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
      expect(typeof answer.error?.code, text).toBe("string");
      expect(typeof answer.error?.message, text).toBe("string");
      if (c.message) expect(answer.error?.message).toMatch(c.message);
    });

    it("keeps serving, and left nothing half-made: no stray disk folder, file, record or engine container", async () => {
      const { admin, alice } = control.clients;
      expect((await alice.whoami()).name).toBe("alice");
      const disks = await admin.disks.list();
      expect(disks.map((d) => d.name).sort()).toEqual(["b", "sweep"]);
      expect(readdirSync(control.disksDir).sort()).toEqual(disks.map((d) => d.id).sort());
      expect(readdirSync(join(control.disksDir, ids.disk), { recursive: true }).map(String).sort()).toEqual([
        "folder",
        "folder/inside.txt",
        "readme.txt",
      ]);
      const containers = await admin.containers.list();
      expect(containers.map((c) => [c.id, c.info.status])).toEqual([[ids.ctr, "exited"]]);
      // the engine's containers made by this service process: exactly the recorded ones
      const engine = await new Docker().listContainers({
        all: true,
        filters: {
          label: ["affinetes.control.container", `affinetes.owner.pid=${control.service.child.pid}`],
        },
      });
      const recorded = new Set(containers.map((c) => c.id));
      const strays = engine.filter((e) => !recorded.has(e.Labels["affinetes.control.container"] ?? ""));
      expect(strays.map((e) => e.Names[0])).toEqual([]);
    });
  },
);
