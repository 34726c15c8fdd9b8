import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawExchange, startServer, type ServerProcess } from "./server-process.js";

/**
 * The method server's bad-input sweep: every malformed head, framing, body and argument
 * is answered with a 4xx `{detail}` (never a 500, never a hang), and the server keeps
 * serving. Run against a server holding a token (requests carry it, so what is checked is
 * what comes after the token) and one without (the Python affinetes' open behaviour).
 */
const TOKEN = "sweep-token-0123456789abcdef";
const HEAD_TIMEOUT_S = 1;
const MAX_BODY = 64 * 1024;

interface Case {
  name: string;
  /** The raw request (the token's header is added after the request line when the server has one). */
  send: string | Buffer | Array<string | Buffer>;
  status: number;
  /** Half-close after sending (the client stops mid-request). */
  end?: boolean;
  detail?: RegExp;
}

const call = (body: string, extra = "") =>
  `POST /call HTTP/1.1\r\nHost: x\r\n${extra}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const callJson = (value: unknown) => call(JSON.stringify(value));
const chunked = (chunks: string) =>
  `POST /call HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}`;
const okBody = JSON.stringify({ method: "add", args: [1, 2] });

const cases: Case[] = [
  // heads
  { name: "garbage request line", send: "GARBAGE\r\n\r\n", status: 400 },
  { name: "request line of four parts", send: "GET /health HTTP/1.1 x\r\n\r\n", status: 400 },
  { name: "tab-separated request line", send: "GET\t/health\tHTTP/1.1\r\n\r\n", status: 400 },
  { name: "unsupported HTTP version", send: "GET /health HTTP/2.0\r\n\r\n", status: 400 },
  { name: "absolute-form target", send: "GET http://x/health HTTP/1.1\r\n\r\n", status: 400 },
  { name: "header line without a colon", send: "GET /health HTTP/1.1\r\nNoColon\r\n\r\n", status: 400 },
  { name: "header name with a space", send: "GET /health HTTP/1.1\r\nBad Name: x\r\n\r\n", status: 400 },
  { name: "NUL byte in the target", send: "GET /he\0alth HTTP/1.1\r\n\r\n", status: 400 },
  { name: "NUL byte in a header value", send: "GET /health HTTP/1.1\r\nX-A: a\0b\r\n\r\n", status: 400 },
  {
    name: "head larger than 64 KiB",
    send: `GET /health HTTP/1.1\r\nX-Big: ${"a".repeat(70 * 1024)}\r\n\r\n`,
    status: 431,
  },
  { name: "head cut short by the client", send: "POST /call HTTP/1.1\r\nHost:", end: true, status: 400 },
  { name: "head never finished (read timeout)", send: "POST /call HTTP/1.1\r\nHost: x\r\n", status: 408 },
  { name: "bare LF line endings (never a head)", send: "GET /health HTTP/1.1\n\n", status: 408 },
  // framing
  {
    name: "Content-Length not a number",
    send: call("{}").replace(/Content-Length: \d+/, "Content-Length: abc"),
    status: 400,
  },
  {
    name: "negative Content-Length",
    send: call("{}").replace(/Content-Length: \d+/, "Content-Length: -1"),
    status: 400,
  },
  {
    name: "Content-Length with a sign",
    send: call("{}").replace(/Content-Length: \d+/, "Content-Length: +2"),
    status: 400,
  },
  {
    name: "Content-Length in exponent form",
    send: call("{}").replace(/Content-Length: \d+/, "Content-Length: 2e0"),
    status: 400,
  },
  {
    name: "Content-Length of 20 digits",
    send: call("{}").replace(/Content-Length: \d+/, `Content-Length: ${"9".repeat(20)}`),
    status: 400,
  },
  { name: "two different Content-Lengths", send: call("{}", "Content-Length: 5\r\n"), status: 400 },
  {
    name: "Content-Length and Transfer-Encoding",
    send: call("{}", "Transfer-Encoding: chunked\r\n"),
    status: 400,
  },
  {
    name: "Content-Length over the limit",
    send: call("{}").replace(/Content-Length: \d+/, `Content-Length: ${MAX_BODY + 1}`),
    status: 413,
  },
  {
    name: "Content-Length over the limit with Expect: 100-continue (refused before the body)",
    send: `POST /call HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${50 * 1024 * 1024}\r\n\r\n`,
    status: 413,
  },
  {
    name: "body shorter than its Content-Length, then silence",
    send: call("{}").replace(/Content-Length: \d+/, "Content-Length: 100"),
    status: 408,
  },
  {
    name: "body shorter than its Content-Length, then close",
    send: call("{}").replace(/Content-Length: \d+/, "Content-Length: 100"),
    end: true,
    status: 400,
  },
  {
    name: "unsupported Transfer-Encoding",
    send: "POST /call HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    status: 400,
  },
  { name: "chunk size not hex", send: chunked("zz\r\nab\r\n0\r\n\r\n"), status: 400 },
  { name: "negative chunk size", send: chunked("-5\r\nabcde\r\n0\r\n\r\n"), status: 400 },
  { name: "chunk size past any limit", send: chunked("fffffffffffffff\r\n"), status: 413 },
  { name: "chunk size of 17 hex digits", send: chunked("10000000000000000\r\n"), status: 400 },
  { name: "chunk data not followed by CRLF", send: chunked("2\r\n{}XX0\r\n\r\n"), status: 400 },
  {
    name: "chunks summing past the limit",
    send: chunked(`8000\r\n${"a".repeat(0x8000)}\r\n8001\r\n`),
    status: 413,
  },
  { name: "chunked body stopping mid-way", send: chunked("10\r\nabc"), status: 408 },
  { name: "chunk size line past 64 KiB", send: chunked(`1;${"x".repeat(70 * 1024)}`), status: 400 },
  // bodies
  { name: "body not JSON", send: call("{not json"), status: 400, detail: /Invalid JSON/ },
  {
    name: "body not UTF-8",
    send: [`POST /call HTTP/1.1\r\nContent-Length: 2\r\n\r\n`, Buffer.from([0xff, 0xfe])],
    status: 400,
  },
  { name: "NaN in the body", send: call('{"method":"echo","args":[NaN]}'), status: 400 },
  { name: "Infinity in the body", send: call('{"method":"echo","args":[Infinity]}'), status: 400 },
  {
    name: "JSON nested 20 000 deep",
    send: call(`{"method":"echo","args":${"[".repeat(20_000)}${"]".repeat(20_000)}}`),
    status: 400,
  },
  {
    name: "integer of 5 000 digits",
    send: call(`{"method":"echo","args":[${"9".repeat(5000)}]}`),
    status: 400,
  },
  { name: "body a JSON array", send: call("[1,2]"), status: 400 },
  { name: "body a JSON string", send: call('"call"'), status: 400 },
  { name: "empty body on /call", send: call(""), status: 400 },
  { name: "method missing", send: callJson({ args: [] }), status: 400 },
  { name: "method a number", send: callJson({ method: 7 }), status: 400 },
  { name: "method null", send: callJson({ method: null }), status: 400 },
  { name: "method empty", send: callJson({ method: "" }), status: 400 },
  { name: "args an object", send: callJson({ method: "add", args: { a: 1 } }), status: 400 },
  { name: "args a string", send: callJson({ method: "add", args: "1,2" }), status: 400 },
  { name: "args null", send: callJson({ method: "add", args: null }), status: 400 },
  { name: "kwargs an array", send: callJson({ method: "add", kwargs: [1] }), status: 400 },
  { name: "kwargs a number", send: callJson({ method: "add", kwargs: 3 }), status: 400 },
  {
    name: "unexpected keyword argument",
    send: callJson({ method: "add", kwargs: { a: 1, zz: 2 } }),
    status: 400,
  },
  {
    name: "NUL byte in a keyword name",
    send: callJson({ method: "add", kwargs: { "a\u0000": 1, b: 2 } }),
    status: 400,
  },
  { name: "too many positional arguments", send: callJson({ method: "add", args: [1, 2, 3] }), status: 400 },
  // names
  {
    name: "unknown method",
    send: callJson({ method: "nope" }),
    status: 404,
    detail: /Method not found: nope/,
  },
  { name: "NUL byte in the method name", send: callJson({ method: "ad\u0000d" }), status: 404 },
  { name: "private method", send: callJson({ method: "_private" }), status: 404 },
  { name: "dunder method", send: callJson({ method: "__init__" }), status: 404 },
  { name: "class attribute", send: callJson({ method: "__class__" }), status: 404 },
  { name: "imported function", send: callJson({ method: "join" }), status: 404 },
  { name: "POST /<method> unknown", send: "POST /nope HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", status: 404 },
  {
    name: "POST /<method> of a private name",
    send: "POST /_private HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    status: 404,
  },
  {
    name: "POST /<method> with an array body",
    send: "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\n[1,2]",
    status: 400,
  },
  { name: "nested path", send: "POST /a/b HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", status: 404 },
  { name: "GET /call", send: "GET /call HTTP/1.1\r\n\r\n", status: 405 },
  { name: "DELETE /health", send: "DELETE /health HTTP/1.1\r\n\r\n", status: 405 },
  // kwargs.timeout
  {
    name: "negative kwargs.timeout",
    send: callJson({ method: "sleepy", kwargs: { seconds: 0, timeout: -1 } }),
    status: 400,
    detail: /kwargs.timeout/,
  },
  {
    name: "zero kwargs.timeout",
    send: callJson({ method: "sleepy", kwargs: { seconds: 0, timeout: 0 } }),
    status: 400,
  },
  {
    name: "huge kwargs.timeout",
    send: callJson({ method: "sleepy", kwargs: { seconds: 0, timeout: 1e12 } }),
    status: 400,
  },
  {
    name: "kwargs.timeout of 1e308",
    send: callJson({ method: "sleepy", kwargs: { seconds: 0, timeout: 1e308 } }),
    status: 400,
  },
  {
    name: "kwargs.timeout overflowing to infinity",
    send: call('{"method":"sleepy","kwargs":{"seconds":0,"timeout":1e400}}'),
    status: 400,
  },
];

for (const withToken of [true, false]) {
  describe(`method server bad-input sweep (${withToken ? "with" : "without"} a token)`, () => {
    let server: ServerProcess;

    beforeAll(async () => {
      server = await startServer({
        AFFINETES_MAX_BODY_BYTES: String(MAX_BODY),
        AFFINETES_HEAD_TIMEOUT_SECONDS: String(HEAD_TIMEOUT_S),
        ...(withToken ? { AFFINETES_AUTH_TOKEN: TOKEN } : {}),
      });
    });

    afterAll(async () => {
      await server?.stop();
    });

    /** The case's request, carrying the token after its request line. */
    function withAuth(send: Case["send"]): Array<string | Buffer> {
      const parts = Array.isArray(send) ? send : [send];
      if (!withToken) return parts;
      const [first, ...rest] = parts;
      const text = Buffer.isBuffer(first) ? first.toString("latin1") : (first as string);
      const at = text.indexOf("\r\n");
      if (at < 0) return parts;
      const authed = `${text.slice(0, at + 2)}Authorization: Bearer ${TOKEN}\r\n${text.slice(at + 2)}`;
      return [Buffer.from(authed, "latin1"), ...rest];
    }

    it.each(cases)("$name -> $status", async ({ send, status, end, detail }) => {
      const answer = await rawExchange(server.port, withAuth(send), {
        end: end ?? false,
        waitMs: (HEAD_TIMEOUT_S + 5) * 1000,
      });
      expect(answer.status, `answer: ${JSON.stringify(answer)}`).toBe(status);
      expect(answer.body).toMatchObject({ detail: expect.any(String) });
      if (detail) expect((answer.body as { detail: string }).detail).toMatch(detail);
      // never a hang: a read timeout answers within its bound (plus the sweep's tick and slack)
      expect(answer.elapsedMs).toBeLessThan((HEAD_TIMEOUT_S + 3) * 1000);
      // and the server keeps serving
      const health = await rawExchange(server.port, withAuth("GET /health HTTP/1.1\r\n\r\n"));
      expect(health.status).toBe(200);
    });

    it("still answers calls after the whole sweep", async () => {
      const answer = await rawExchange(server.port, withAuth(call(okBody)));
      expect(answer).toMatchObject({ status: 200, body: { status: "success", result: { sum: 3 } } });
      expect(server.output()).not.toMatch(/internal error/);
    });
  });
}
