import { execFileSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * An address of this machine that is not loopback, made for the test: a bridge (no ports)
 * holding 10.213.N.1/32. A sandbox's NAT reaches it as it would reach any host outside,
 * and traffic never leaves the machine. Removed by `remove()`.
 */
export interface TestNetwork {
  address: string;
  /** An HTTP server answering `name` on the address, on a free port (or on 127.0.0.1 with `loopback`). */
  server(name: string, options?: { loopback?: boolean }): Promise<{ url: string; port: number }>;
  remove(): Promise<void>;
}

/** Makes the test network; undefined when this machine does not let us (not root, no bridge support). */
export function makeTestNetwork(): TestNetwork | undefined {
  const link = `afs-cf-${randomBytes(2).toString("hex")}`;
  const address = `10.213.${randomInt(100, 250)}.1`;
  try {
    execFileSync("ip", ["link", "add", link, "type", "bridge"], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  execFileSync("ip", ["addr", "add", `${address}/32`, "dev", link]);
  execFileSync("ip", ["link", "set", link, "up"]);
  const servers: Server[] = [];
  return {
    address,
    async server(name, options = {}) {
      const server = createServer((_req, res) => res.end(name));
      servers.push(server);
      server.listen(0, options.loopback ? "127.0.0.1" : address);
      await once(server, "listening");
      const { port } = server.address() as AddressInfo;
      return { url: `http://${options.loopback ? "127.0.0.1" : address}:${port}/`, port };
    },
    async remove() {
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
      execFileSync("ip", ["link", "del", link]);
    },
  };
}

/**
 * A shell command printing what `url` answers, or `unreachable <why>`: Python's standard
 * library (every sandbox here has python3), a 3 s bound.
 */
export function probe(url: string): string {
  const code = [
    "import sys, urllib.request",
    "try:",
    "    print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())",
    "except Exception as e:",
    '    print("unreachable", type(e).__name__)',
  ].join("\n");
  return `python3 -c '${code}' '${url}'`;
}
