import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { serverScriptPath } from "../../src/server/server-files.js";
import { fixturePath } from "../helpers/paths.js";

/** A method server run straight from its script, as a container or the process runtime runs it. */
export interface ServerProcess extends AsyncDisposable {
  port: number;
  base: string;
  child: ChildProcess;
  /** Everything the server wrote (stdout and stderr). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts the method server on 127.0.0.1 and a free port, serving the environment folder
 * `folder` (default test/fixtures/protocol-env), with `python` (default
 * `AFFINETES_TEST_SERVER_PYTHON`, else `python3`).
 */
export async function startServer(
  env: Record<string, string> = {},
  options: { folder?: string; python?: string } = {},
): Promise<ServerProcess> {
  const folder = options.folder ?? fixturePath("protocol-env");
  const dir = mkdtempSync(join(tmpdir(), "affinetes-server-"));
  const portFile = join(dir, "port");
  let output = "";
  // AFFINETES_TEST_SERVER_PYTHON runs the server tests under another interpreter (>= 3.8).
  const python = options.python ?? process.env.AFFINETES_TEST_SERVER_PYTHON ?? "python3";
  const child = spawn(python, ["-u", serverScriptPath()], {
    cwd: folder,
    env: {
      ...process.env,
      AFFINETES_ENV_PATH: join(folder, "env.py"),
      AFFINETES_HOST: "127.0.0.1",
      AFFINETES_PORT: "0",
      AFFINETES_PORT_FILE: portFile,
      // it exits with this test process, even when a test times out before its cleanup
      AFFINETES_PARENT_PID: String(process.pid),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  for (let i = 0; i < 1000 && !existsSync(portFile) && child.exitCode === null; i++) await sleep(10);
  if (!existsSync(portFile)) {
    child.kill("SIGKILL");
    throw new Error(`the method server did not start:\n${output}`);
  }
  const port = Number(readFileSync(portFile, "utf8"));
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    })());
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    child,
    output: () => output,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** What a raw exchange saw: the first response (when one came), and whether the server closed. */
export interface RawAnswer {
  status: number | undefined;
  headers: Record<string, string>;
  /** The body parsed as JSON, or its text when it is not JSON. */
  body: unknown;
  /** The server closed the connection (FIN or reset) before `waitMs` passed. */
  closed: boolean;
  elapsedMs: number;
}

/**
 * Sends `payload` on a fresh connection (then half-closes it when `end`), and reads until
 * one whole response arrived and, with `untilClose`, the server closed; gives up after `waitMs`.
 */
export async function rawExchange(
  port: number,
  payload: string | Buffer | ReadonlyArray<string | Buffer>,
  options: { end?: boolean; waitMs?: number; untilClose?: boolean; host?: string } = {},
): Promise<RawAnswer> {
  const started = Date.now();
  const socket = connect(port, options.host ?? "127.0.0.1");
  socket.on("error", () => undefined); // a reset is an answer too: `closed`
  const parts = Array.isArray(payload) ? payload : [payload as string | Buffer];
  socket.once("connect", () => {
    for (const part of parts) socket.write(part);
    if (options.end) socket.end();
  });
  let data = Buffer.alloc(0);
  const result = await new Promise<{ closed: boolean }>((resolve) => {
    const timer = setTimeout(() => resolve({ closed: false }), options.waitMs ?? 10_000);
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      resolve({ closed });
    };
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (!options.untilClose && parseResponse(data).complete) finish(false);
    });
    socket.once("close", () => finish(true));
  });
  const elapsedMs = Date.now() - started;
  socket.destroy();
  const parsed = parseResponse(data);
  return {
    status: parsed.status,
    headers: parsed.headers,
    body: parsed.body,
    closed: result.closed,
    elapsedMs,
  };
}

function parseResponse(data: Buffer): {
  complete: boolean;
  status: number | undefined;
  headers: Record<string, string>;
  body: unknown;
} {
  let text = data.toString("latin1");
  // A 100 Continue comes before the response proper.
  while (text.startsWith("HTTP/1.1 100 ")) text = text.slice(text.indexOf("\r\n\r\n") + 4);
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return { complete: false, status: undefined, headers: {}, body: undefined };
  const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const at = line.indexOf(":");
    headers[line.slice(0, at).toLowerCase()] = line.slice(at + 1).trim();
  }
  const length = Number(headers["content-length"] ?? 0);
  const raw = Buffer.from(text.slice(end + 4), "latin1");
  const bodyText = raw.subarray(0, length).toString("utf8");
  let body: unknown = bodyText;
  try {
    body = JSON.parse(bodyText);
  } catch {
    // not JSON: kept as text
  }
  return {
    complete: raw.length >= length,
    status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "")?.[1]) || undefined,
    headers,
    body,
  };
}

/** Opens `count` connections and keeps them open (each after writing `payload`, when given). */
export async function openSockets(
  port: number,
  count: number,
  payload?: string,
  host = "127.0.0.1",
): Promise<Socket[]> {
  const sockets = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Socket>((resolve) => {
          const socket = connect(port, host);
          socket.on("error", () => undefined);
          socket.resume(); // read what the server sends, so its close is seen
          socket.once("connect", () => {
            if (payload !== undefined) socket.write(payload);
            resolve(socket);
          });
          // refused or reset before connecting: still a socket the caller counts as closed
          socket.once("close", () => resolve(socket));
        }),
    ),
  );
  return sockets;
}

/** Whether the server closed `socket` (its readable side ended, or it was reset). */
export function isClosedByServer(socket: Socket): boolean {
  return socket.destroyed || socket.readableEnded;
}
