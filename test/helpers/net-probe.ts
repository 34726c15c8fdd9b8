import { createServer } from "node:net";
import type { Server } from "node:net";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import type { Instance } from "../../src/index.js";

/**
 * A TCP server of the test's own, on an address of this machine (a bridge's gateway):
 * it greets every connection with `hello <port>` and closes it.
 */
export interface TestServer extends AsyncDisposable {
  host: string;
  port: number;
  /** What a probe that reached it reports. */
  greeting: string;
}

export async function startTestServer(host: string): Promise<TestServer> {
  const server: Server = createServer((socket) => {
    socket.on("error", () => undefined);
    socket.end(`hello ${(server.address() as { port: number }).port}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const port = (server.address() as { port: number }).port;
  return {
    host,
    port,
    greeting: `connected: hello ${port}`,
    [Symbol.asyncDispose]: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The IPv4 address of a bridge interface of this machine (`docker0`, `br-hostc`), also
 * while it is down (no container on it yet), which Node's own list leaves out.
 */
export function bridgeAddress(name: string): string {
  const out = execFileSync("ip", ["-4", "-o", "addr", "show", "dev", name], { encoding: "utf8" });
  const address = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(out)?.[1];
  if (!address) throw new Error(`no IPv4 address on ${name}`);
  return address;
}

/**
 * Python run inside a sandbox: connects to `host:port` and prints `connected: <greeting>`
 * (empty when the server says nothing first) or the error (ConnectionRefusedError,
 * TimeoutError, ...).
 */
export function probeCommand(host: string, port: number, timeoutSeconds = 3): string {
  const script = [
    "import socket",
    "try:",
    `    c = socket.create_connection(("${host}", ${port}), timeout=${timeoutSeconds})`,
    "except Exception as e:",
    '    print(type(e).__name__ + ": " + str(e))',
    "else:",
    "    c.settimeout(1)",
    "    try:",
    "        said = c.recv(100).decode().strip()",
    "    except Exception:",
    '        said = ""  # a server that waits for a request (a method server)',
    '    print("connected: " + said)',
  ].join("\n");
  return `python3 -c '${script}'`;
}

/** Probes `host:port` from inside `instance`; returns the probe's one line. */
export async function probe(
  instance: Instance,
  host: string,
  port: number,
  timeoutSeconds = 3,
): Promise<string> {
  const result = await instance.exec(probeCommand(host, port, timeoutSeconds));
  return (result.stdout + result.stderr).trim();
}

/** Whether the capability numbered `bit` is in the effective set of `status` (/proc/self/status). */
export function hasCapability(status: string, bit: number): boolean {
  const hex = /CapEff:\s*([0-9a-f]+)/.exec(status)?.[1];
  if (!hex) throw new Error(`no CapEff in ${status}`);
  return (BigInt(`0x${hex}`) & (1n << BigInt(bit))) !== 0n;
}

export const CAP_NET_ADMIN = 12;
export const CAP_NET_RAW = 13;

/** The host's address on Docker's default bridge: what a container reaches the host at. */
export const DOCKER_GATEWAY = "172.17.0.1";

/**
 * HTTP servers of the test's own on `host` (default the Docker bridge's gateway), each
 * answering `reached`; closed together.
 */
export class HttpTestServers implements AsyncDisposable {
  private readonly servers: HttpServer[] = [];

  constructor(readonly host = DOCKER_GATEWAY) {}

  /** A new server on a free port; returns the port. */
  async listen(): Promise<number> {
    const server = createHttpServer((_req, res) => res.end("reached"));
    this.servers.push(server);
    server.listen(0, this.host);
    await once(server, "listening");
    return (server.address() as { port: number }).port;
  }

  /** A shell command that prints `reached` when the server on `port` answers from inside a sandbox, else `unreachable`. */
  probe(port: number): string {
    return `python3 -c "import urllib.request as u; print(u.urlopen('http://${this.host}:${port}/', timeout=3).read().decode())" 2>/dev/null || echo unreachable`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}
