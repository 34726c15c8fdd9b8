import { connect, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { until } from "../helpers/until.js";
import { isClosedByServer, openSockets, rawExchange, startServer } from "./server-process.js";

const TOKEN = "connections-token-0123456789";
const health = (auth = true) =>
  `GET /health HTTP/1.1\r\nHost: x\r\n${auth ? `Authorization: Bearer ${TOKEN}\r\n` : ""}\r\n`;
const call = (headers: string, body = '{"method":"add","args":[1,2]}') =>
  `POST /call HTTP/1.1\r\nHost: x\r\n${headers}Content-Length: ${body.length}\r\n\r\n${body}`;

/** A connection that keeps what it received, to send more on it later. */
async function keptConnection(port: number): Promise<{ socket: Socket; received: () => string }> {
  const socket = connect(port, "127.0.0.1");
  let data = "";
  socket.on("data", (d: Buffer) => (data += d.toString("latin1")));
  socket.on("error", () => undefined);
  await new Promise((resolve) => socket.once("connect", resolve));
  return { socket, received: () => data };
}

/** The method server's token check, connection cap and read deadlines, spoken to in raw HTTP. */
describe("method server: token, connection cap and deadlines", () => {
  it("takes Bearer <token> only: missing, other schemes, other lengths and prefixes are 401", async () => {
    await using server = await startServer({ AFFINETES_AUTH_TOKEN: TOKEN });
    for (const header of [
      "",
      `Authorization: Basic ${TOKEN}\r\n`,
      `Authorization: Bearer ${TOKEN.slice(0, -1)}\r\n`,
      `Authorization: Bearer ${TOKEN}x\r\n`,
      `Authorization: Bearer\r\n`,
      `Authorization: ${TOKEN}\r\n`,
      `X-Token: ${TOKEN}\r\n`,
    ]) {
      const answer = await rawExchange(server.port, call(header));
      expect(answer.status, header).toBe(401);
      expect(answer.headers["www-authenticate"]).toMatch(/^Bearer/);
      expect(answer.body).toMatchObject({ detail: expect.stringMatching(/token/) });
    }
    for (const header of [`Authorization: Bearer ${TOKEN}\r\n`, `authorization: bearer ${TOKEN}\r\n`]) {
      expect(await rawExchange(server.port, call(header))).toMatchObject({
        status: 200,
        body: { result: { sum: 3 } },
      });
    }
  });

  it("answers 401 at the head, before reading a body it announces", async () => {
    await using server = await startServer({ AFFINETES_AUTH_TOKEN: TOKEN });
    const answer = await rawExchange(
      server.port,
      `POST /call HTTP/1.1\r\nContent-Length: ${60 * 1024 * 1024}\r\n\r\n{`,
      { waitMs: 3_000, untilClose: true },
    );
    expect(answer).toMatchObject({ status: 401, closed: true });
    expect(answer.elapsedMs).toBeLessThan(2_500); // not waiting for 60 MiB
  });

  it("GET and HEAD /health need no token; HEAD has no body", async () => {
    await using server = await startServer({ AFFINETES_AUTH_TOKEN: TOKEN });
    expect(await rawExchange(server.port, health(false))).toMatchObject({
      status: 200,
      body: { status: "ok" },
    });
    const head = await rawExchange(server.port, "HEAD /health HTTP/1.1\r\n\r\n", {
      waitMs: 1_000,
      untilClose: true,
    });
    expect(head.status).toBe(200);
    expect(head.body).toBe(""); // headers only, though Content-Length tells the GET's size
  });

  it("answers Expect: 100-continue once the head is accepted", async () => {
    await using server = await startServer({ AFFINETES_AUTH_TOKEN: TOKEN });
    const body = '{"method":"add","args":[2,3]}';
    const conn = await keptConnection(server.port);
    conn.socket.write(
      `POST /call HTTP/1.1\r\nAuthorization: Bearer ${TOKEN}\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    expect(await until(() => conn.received().startsWith("HTTP/1.1 100 Continue\r\n\r\n"), 2_000)).toBe(true);
    conn.socket.write(body);
    expect(await until(() => conn.received().includes('"sum": 5'), 2_000)).toBe(true);
    conn.socket.destroy();
  });

  it("at the cap, drops the oldest connection that never proved the token to admit a new one", async () => {
    await using server = await startServer({ AFFINETES_AUTH_TOKEN: TOKEN, AFFINETES_MAX_CONNECTIONS: "8" });
    const owner = await keptConnection(server.port);
    owner.socket.write(health());
    expect(await until(() => owner.received().includes("200 OK"), 2_000)).toBe(true);
    const idle = await openSockets(server.port, 7);
    const late = await openSockets(server.port, 3);
    expect(await until(() => idle.slice(0, 3).every(isClosedByServer), 2_000)).toBe(true);
    expect(idle.slice(3).some(isClosedByServer)).toBe(false);
    expect(late.some(isClosedByServer)).toBe(false);
    // the owner's proven connection was kept and still serves
    owner.socket.write(health());
    expect(await until(() => owner.received().split("200 OK").length === 3, 2_000)).toBe(true);
    for (const s of [owner.socket, ...idle, ...late]) s.destroy();
  });

  it("at the cap with every connection proven, a new one is answered 503 {detail} and closed", async () => {
    await using server = await startServer({ AFFINETES_AUTH_TOKEN: TOKEN, AFFINETES_MAX_CONNECTIONS: "3" });
    const owners = await Promise.all([1, 2, 3].map(() => keptConnection(server.port)));
    for (const owner of owners) owner.socket.write(health());
    expect(await until(() => owners.every((o) => o.received().includes("200 OK")), 2_000)).toBe(true);
    const refused = await rawExchange(server.port, health(), { waitMs: 2_000 });
    expect(refused).toMatchObject({ status: 503, body: { detail: expect.stringMatching(/Too many open/) } });
    owners[0]?.socket.destroy();
    await until(async () => (await rawExchange(server.port, health())).status === 200, 2_000);
    expect((await rawExchange(server.port, health())).status).toBe(200);
    for (const owner of owners) owner.socket.destroy();
  });

  it("closes a connection silent from the start after the head timeout, and an idle kept-alive one after the idle timeout", async () => {
    await using server = await startServer({
      AFFINETES_HEAD_TIMEOUT_SECONDS: "0.5",
      AFFINETES_IDLE_TIMEOUT_SECONDS: "1.5",
    });
    const [silent] = await openSockets(server.port, 1);
    const kept = await keptConnection(server.port);
    kept.socket.write(health(false));
    expect(await until(() => kept.received().includes("200 OK"), 2_000)).toBe(true);
    const closedAt = (socket: Socket) =>
      new Promise<number>((resolve) => {
        if (isClosedByServer(socket)) resolve(Date.now());
        socket.once("close", () => resolve(Date.now()));
      });
    const started = Date.now();
    const [silentClosed, keptClosed] = await Promise.all([closedAt(silent as Socket), closedAt(kept.socket)]);
    expect(silentClosed - started).toBeLessThan(1_500);
    expect(keptClosed - started).toBeGreaterThan(1_000); // kept past the head timeout: it was idle, not slow
    expect(keptClosed - started).toBeLessThan(3_000);
  });

  it("no token in the environment of env.py's code or its children", async () => {
    const tokenEnvPath = fileURLToPath(new URL("../security/fixtures/token-env", import.meta.url));
    await using server = await startServer({ AFFINETES_AUTH_TOKEN: TOKEN }, { folder: tokenEnvPath });
    const answer = await rawExchange(
      server.port,
      call(`Authorization: Bearer ${TOKEN}\r\n`, '{"method":"token_in_environment"}'),
    );
    expect(answer).toMatchObject({ status: 200, body: { result: { own: null, child: "" } } });
  });
});
