import type Docker from "dockerode";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { expect, it } from "vitest";
import { connectEnv } from "../../src/index.js";
import type { EnvironmentHandle, RemoteMethod } from "../../src/index.js";
import { afs } from "../helpers/afs.js";
import { until } from "../helpers/until.js";
import { isClosedByServer, openSockets } from "../server/server-process.js";

/** The environment the attacks target (test/security/fixtures/token-env). */
export const tokenEnvPath = fileURLToPath(new URL("./fixtures/token-env", import.meta.url));

export type TokenEnv = EnvironmentHandle<{ add: RemoteMethod; token_in_environment: RemoteMethod }>;

/** How a runtime's suite loads the target: a new environment, with extra server settings. */
export type LoadTarget = (envVars?: Record<string, string>) => Promise<TokenEnv>;

const CALL = JSON.stringify({ method: "add", args: [1, 2] });

/** A request as an attacker sends it: plain HTTP, its own headers, no affinetes client. */
export async function attackerRequest(
  endpoint: string,
  method: "GET" | "POST",
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; body: { detail?: unknown; status?: unknown; result?: unknown } }> {
  const res = await request(`${endpoint}${path}`, {
    method,
    headers: { "content-type": "application/json", ...headers },
    ...(body !== undefined ? { body } : {}),
    headersTimeout: 5_000,
    bodyTimeout: 5_000,
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: JSON.parse(text) as { detail?: unknown } };
}

/**
 * The attacks of issue 14 item 4, as they worked before: any client that reaches the
 * method server's port called or stalled it. Each runtime's test file runs them.
 */
export function methodServerAttacks(load: LoadTarget): void {
  it("refuses calls without the token or with a wrong one (401 {detail}); the owner's calls succeed", async () => {
    await using env = await load();
    const token = env.instances[0]?.authToken as string;
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const wrong = token.replace(/^./, (c) => (c === "A" ? "B" : "A")); // same length, one character off
    const attempts: Array<Record<string, string>> = [
      {},
      { authorization: `Bearer ${wrong}` },
      { authorization: `Basic ${token}` },
    ];
    for (const headers of attempts) {
      const answer = await attackerRequest(env.endpoint, "POST", "/call", headers, CALL);
      expect(answer).toMatchObject({ status: 401, body: { detail: expect.stringMatching(/token/) } });
    }
    // every route but /health, whether it exists or not
    expect((await attackerRequest(env.endpoint, "GET", "/methods")).status).toBe(401);
    expect((await attackerRequest(env.endpoint, "POST", "/add", {}, '{"a":1,"b":2}')).status).toBe(401);
    expect((await attackerRequest(env.endpoint, "POST", "/nope", {}, "{}")).status).toBe(401);
    // /health tells only that the server is up, as a TCP connect would
    expect(await attackerRequest(env.endpoint, "GET", "/health")).toEqual({
      status: 200,
      body: { status: "ok" },
    });
    // the owner: its loadEnv handle, and a raw request with the token
    expect(await env.add({ a: 1, b: 2 })).toBe(3);
    expect((await env.listMethods()).map((m) => m.name)).toContain("add");
    const owner = await attackerRequest(
      env.endpoint,
      "POST",
      "/call",
      { authorization: `Bearer ${token}` },
      CALL,
    );
    expect(owner).toMatchObject({ status: 200, body: { status: "success", result: 3 } });
    // the environment's own code and its children do not inherit the token
    expect(await env.token_in_environment()).toEqual({ own: null, child: "" });
  });

  it("a later client that connects by name holds the token: connectEnv and `afs call` from another process", async () => {
    await using env = await load();
    await using again = (await connectEnv(env.name)) as TokenEnv;
    expect(again.instances[0]?.authToken).toBe(env.instances[0]?.authToken);
    expect(await again.add({ a: 2, b: 3 })).toBe(5);
    const cli = await afs(["call", env.name, "add", "--arg", "a=4", "--arg", "b=5"]);
    expect(cli).toMatchObject({ code: 0 });
    expect(JSON.parse(cli.stdout)).toBe(9);
  });

  it("holds under 200 half-sent requests: the owner's calls and /health answer in their usual time, the server's read timeout closes the half-sent", async () => {
    await using env = await load();
    const { hostname, port } = new URL(env.endpoint);
    expect(await env.add({ a: 1, b: 1 })).toBe(2);
    const partialHeads = await openSockets(Number(port), 100, "POST /call HTTP/1.1\r\nHost: x\r\n", hostname);
    const partialBodies = await openSockets(
      Number(port),
      100,
      'POST /call HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"method":',
      hostname,
    );
    try {
      // a body without the token is refused at its head, before a byte of it is read
      expect(await until(() => partialBodies.every(isClosedByServer), 3_000)).toBe(true);
      for (let i = 0; i < 10; i++) {
        // the readiness probe's and the health monitor's own bound is 1 s
        const health = await attackerRequest(env.endpoint, "GET", "/health");
        expect(health.status).toBe(200);
        expect(await env.add({ a: i, b: 1 }, { timeoutMs: 2_000 })).toBe(i + 1);
      }
      expect(env.getStats().healthyInstances).toBe(1);
      expect(partialHeads.filter(isClosedByServer)).toHaveLength(0); // still held: their 10 s are not up
      // the head timeout (10 s after the first byte) closes every half-sent head
      expect(await until(() => partialHeads.every(isClosedByServer), 14_000)).toBe(true);
      expect(await env.add({ a: 2, b: 2 })).toBe(4);
    } finally {
      for (const socket of [...partialHeads, ...partialBodies]) socket.destroy();
    }
  });

  it("caps open connections: N+50 idle ones leave at most N open, and the owner is still answered", async () => {
    const cap = 64;
    await using env = await load({ AFFINETES_MAX_CONNECTIONS: String(cap) });
    const { hostname, port } = new URL(env.endpoint);
    expect(await env.add({ a: 1, b: 2 })).toBe(3);
    const idle = await openSockets(Number(port), cap + 50, undefined, hostname);
    try {
      // connections that never proved the token are dropped, oldest first, to make room
      expect(await until(() => idle.filter(isClosedByServer).length >= 50, 5_000)).toBe(true);
      expect(await env.add({ a: 2, b: 2 }, { timeoutMs: 2_000 })).toBe(4);
      // a new connection of the owner (another client, connecting by name) gets in too
      await using other = (await connectEnv(env.name)) as TokenEnv;
      expect(await other.add({ a: 3, b: 2 }, { timeoutMs: 2_000 })).toBe(5);
      expect((await attackerRequest(env.endpoint, "GET", "/health")).status).toBe(200);
      expect(idle.filter((s) => !isClosedByServer(s)).length).toBeLessThanOrEqual(cap);
      expect(env.getStats().healthyInstances).toBe(1);
    } finally {
      for (const socket of idle) socket.destroy();
    }
  });
}

export const tokenImage = "affinetes-security/token-env:latest";

/**
 * What a second container on the same bridge tries against an environment's method
 * server, by its bridge address: calls without the token, with a wrong one, the method
 * list, a direct route, and /health. Prints each answer's status and body as JSON.
 */
export const ATTACKER_SCRIPT = `
import json, sys, urllib.request, urllib.error
base = sys.argv[1]
def req(method, path, headers=None, body=None):
    r = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(r, timeout=5) as resp:
            return [resp.status, json.loads(resp.read().decode())]
    except urllib.error.HTTPError as e:
        return [e.code, json.loads(e.read().decode())]
    except Exception as e:
        return [0, repr(e)]
call = json.dumps({"method": "add", "args": [1, 2]}).encode()
json_type = {"Content-Type": "application/json"}
print(json.dumps({
    "none": req("POST", "/call", json_type, call),
    "wrong": req("POST", "/call", dict(json_type, Authorization="Bearer " + "A" * 43), call),
    "methods": req("GET", "/methods"),
    "direct": req("POST", "/add", json_type, b'{"a": 1, "b": 2}'),
    "health": req("GET", "/health"),
}))
`;

/** Runs the attacker in a new container of `image` on the engine's default bridge; returns what it printed. */
export async function attackFromContainer(docker: Docker, image: string, target: string): Promise<unknown> {
  const container = await docker.createContainer({
    Image: image,
    Entrypoint: ["python3", "-c", ATTACKER_SCRIPT, target],
    Cmd: [],
    Labels: { "affinetes.test": "method-server-attacker" },
  });
  try {
    await container.start();
    await container.wait();
    const logs = (await container.logs({ stdout: true, stderr: true })).toString("latin1");
    // the log stream frames each line with an 8-byte header: keep the JSON line
    const line = logs.split("\n").find((l) => l.includes('"none"')) ?? logs;
    return JSON.parse(line.slice(line.indexOf("{")));
  } finally {
    await container.remove({ force: true });
  }
}

/** The answers a container without the token gets: 401 {detail} everywhere but /health. */
export const refusedEverywhere = {
  none: [401, { detail: expect.stringMatching(/token/) }],
  wrong: [401, { detail: expect.stringMatching(/token/) }],
  methods: [401, { detail: expect.any(String) }],
  direct: [401, { detail: expect.any(String) }],
  health: [200, { status: "ok" }],
};
