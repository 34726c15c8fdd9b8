import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serverScriptPath } from "../../src/server/server-files.js";
import { fixturePath } from "../helpers/paths.js";

/** Speaks plain HTTP to the method server, checking every documented shape. */
describe("method server protocol", () => {
  let server: ChildProcess;
  let base: string;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "affinetes-protocol-"));
    const portFile = join(dir, "port");
    server = spawn("python3", ["-u", serverScriptPath()], {
      cwd: fixturePath("protocol-env"),
      env: {
        ...process.env,
        AFFINETES_ENV_PATH: join(fixturePath("protocol-env"), "env.py"),
        AFFINETES_HOST: "127.0.0.1",
        AFFINETES_PORT: "0",
        AFFINETES_PORT_FILE: portFile,
        AFFINETES_MAX_BODY_BYTES: String(1024 * 1024),
        PROTOCOL_SECRET: "s3cret",
      },
      stdio: "ignore",
    });
    for (let i = 0; i < 500 && !existsSync(portFile); i++) await sleep(10);
    base = `http://127.0.0.1:${readFileSync(portFile, "utf8")}`;
  });

  afterAll(() => {
    server?.kill("SIGKILL");
  });

  async function post(
    path: string,
    body: unknown,
  ): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await request(`${base}${path}`, {
      method: "POST",
      body: typeof body === "string" ? body : JSON.stringify(body),
      headers: { "content-type": "application/json" },
    });
    return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
  }

  async function get(path: string): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await request(`${base}${path}`);
    return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
  }

  it("GET /health answers 200 {status: ok}", async () => {
    expect(await get("/health")).toEqual({ status: 200, json: { status: "ok" } });
  });

  it("GET /methods lists public Actor methods and module functions, never private or imported ones", async () => {
    const { status, json } = await get("/methods");
    expect(status).toBe(200);
    const methods = json.methods as Array<Record<string, string>>;
    const names = methods.map((m) => m.name);
    expect(names).toEqual(expect.arrayContaining(["add", "echo", "raises", "secret_value", "sleepy"]));
    for (const hidden of ["_private", "join", "imported_helper", "Actor", "Point", "Model"]) {
      expect(names).not.toContain(hidden);
    }
    for (const m of methods)
      expect(Object.keys(m).sort()).toEqual(["endpoint", "name", "signature", "source"]);
    expect(methods.find((m) => m.name === "secret_value")).toEqual({
      name: "secret_value",
      signature: "()",
      source: "Actor",
      endpoint: "POST /secret_value",
    });
    expect(methods.find((m) => m.name === "echo")?.source).toBe("module");
    expect(names.filter((n) => n === "add")).toHaveLength(1);
  });

  it("POST /call returns {status: success, result, error: null}", async () => {
    expect(await post("/call", { method: "echo", args: [1, "x"], kwargs: { k: [true] } })).toEqual({
      status: 200,
      json: { status: "success", result: { args: [1, "x"], kwargs: { k: [true] } }, error: null },
    });
  });

  it("the Actor is built lazily with the env vars given at start, and its methods win over module functions", async () => {
    expect((await post("/call", { method: "secret_value" })).json.result).toBe("s3cret");
    expect((await post("/call", { method: "add", args: [2, 3] })).json.result).toEqual({
      actor: true,
      sum: 5,
    });
  });

  it("results: dataclass -> asdict, model_dump(), and a clear 500 for what JSON cannot hold", async () => {
    expect((await post("/call", { method: "point", kwargs: { x: 3 } })).json.result).toEqual({ x: 3, y: 2 });
    expect((await post("/call", { method: "model" })).json.result).toEqual({ value: "v" });
    const bad = await post("/call", { method: "not_json" });
    expect(bad.status).toBe(500);
    expect(bad.json.detail).toMatch(/could not be encoded as JSON/);
  });

  it("unknown, private and imported methods answer 404 {detail: Method not found: <name>}", async () => {
    for (const name of ["nope", "_private", "join", "imported_helper"]) {
      const res = await post("/call", { method: name });
      expect(res.status).toBe(404);
      expect(res.json.detail).toBe(`Method not found: ${name}`);
    }
  });

  it("an exception in user code answers 500 with message and traceback in detail", async () => {
    const res = await post("/call", { method: "raises", kwargs: { message: "bad value" } });
    expect(res.status).toBe(500);
    expect(res.json.detail).toMatch(/^bad value\nTraceback \(most recent call last\):/);
    expect(res.json.detail).toMatch(/ValueError: bad value/);
    expect(res.json.error_type).toBe("ValueError");
    expect(res.json.message).toBe("bad value");
  });

  it("wrong arguments answer 400 with Python's message, and the server keeps serving", async () => {
    const res = await post("/call", { method: "add", kwargs: { a: 1, c: 2 } });
    expect(res.status).toBe(400);
    expect(res.json.detail).toMatch(/unexpected keyword argument 'c'|missing a required argument/);
    expect((await get("/health")).status).toBe(200);
  });

  it("malformed bodies answer 400 naming the problem", async () => {
    expect((await post("/call", "{not json")).status).toBe(400);
    expect((await post("/call", "[1,2]")).json.detail).toMatch(/must be a JSON object/);
    expect((await post("/call", { args: [] })).json.detail).toMatch(/'method' must be a non-empty string/);
    expect((await post("/call", { method: "add", args: {} })).json.detail).toMatch(
      /'args' must be a JSON array/,
    );
    expect((await post("/call", { method: "add", kwargs: [] })).json.detail).toMatch(
      /'kwargs' must be a JSON object/,
    );
  });

  it("an oversized body answers 413", async () => {
    const res = await post("/call", { method: "echo", args: ["x".repeat(2 * 1024 * 1024)] });
    expect(res.status).toBe(413);
    expect((await get("/health")).status).toBe(200);
  });

  it("POST /<method> takes {args, kwargs} or a flat object as kwargs", async () => {
    expect((await post("/echo", { args: [1], kwargs: { a: 2 } })).json.result).toEqual({
      args: [1],
      kwargs: { a: 2 },
    });
    expect((await post("/echo", { a: 1, b: 2 })).json.result).toEqual({ args: [], kwargs: { a: 1, b: 2 } });
    expect((await post("/echo", "")).json.result).toEqual({ args: [], kwargs: {} });
    expect((await post("/nope", {})).status).toBe(404);
  });

  it("kwargs.timeout bounds the call on the server side (504)", async () => {
    const res = await post("/call", { method: "sleepy", kwargs: { seconds: 30, timeout: 0.2 } });
    expect(res.status).toBe(504);
    expect(res.json.error_type).toBe("TimeoutError");
  });

  it("a TimeoutError raised by the method itself is a 500 with its traceback, with or without kwargs.timeout", async () => {
    for (const kwargs of [{}, { timeout: 5 }]) {
      const res = await post("/call", { method: "own_timeout", kwargs: { ...kwargs } }).catch(
        (e: unknown) => e,
      );
      expect(res).toMatchObject({ status: 500 });
    }
  });

  it("a result whose to_dict() raises is a 500 naming the problem, and the connection survives", async () => {
    const res = await post("/call", { method: "exploding_result" });
    expect(res.status).toBe(500);
    expect(res.json.detail).toMatch(/could not be encoded as JSON: to_dict broke/);
    expect((await get("/health")).status).toBe(200);
  });

  it("async methods run concurrently", async () => {
    const results = await Promise.all(
      Array.from({ length: 4 }, () => post("/call", { method: "async_gather" })),
    );
    expect(results.map((r) => r.json.result)).toEqual([true, true, true, true]);
  });

  it("sync methods run in parallel worker threads", async () => {
    const results = await Promise.all(
      Array.from({ length: 4 }, () => post("/call", { method: "thread_gather" })),
    );
    expect(results.map((r) => r.json.result)).toEqual([true, true, true, true]);
  });

  it("wrong HTTP verbs answer 405; unknown paths 404", async () => {
    expect((await request(`${base}/call`)).statusCode).toBe(405);
    expect((await request(`${base}/health`, { method: "POST", body: "{}" })).statusCode).toBe(405);
    expect((await request(`${base}/a/b`, { method: "POST", body: "{}" })).statusCode).toBe(404);
  });

  it("accepts chunked bodies and answers garbage with 400, still serving afterwards", async () => {
    const url = new URL(base);
    const raw = (payload: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(url.port), url.hostname, () => socket.end(payload));
        let data = "";
        socket.on("data", (d) => (data += d.toString()));
        socket.on("end", () => resolve(data));
        socket.on("error", reject);
      });
    const body = JSON.stringify({ method: "add", args: [40, 2] });
    const chunked = await raw(
      `POST /call HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` +
        `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    );
    expect(chunked).toMatch(/^HTTP\/1\.1 200/);
    expect(chunked).toContain('"sum": 42');
    expect(await raw("GARBAGE\r\n\r\n")).toMatch(/^HTTP\/1\.1 400/);
    expect((await get("/health")).status).toBe(200);
  });
});
