import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionError, InstancePool, createLoadBalancer } from "../../src/index.js";
import type { ExecResult, InstanceEvent, ServingInstance } from "../../src/index.js";

/**
 * Failover logic of the pool, against real local HTTP servers: one answers like the
 * method server, one drops every request after reading it, and one port refuses
 * connections. The instances are stand-ins: this tests the pool, not a runtime.
 */
function standIn(name: string, endpoint: string): ServingInstance {
  return {
    id: name,
    name,
    runtime: "process",
    envType: "function_based",
    reused: false,
    keep: false,
    host: "localhost",
    kind: "serve",
    detach: async () => {},
    endpoint: () => endpoint,
    exec: async (): Promise<ExecResult> => ({
      stdout: "",
      stderr: "",
      exitCode: 0,
      timedOut: false,
      truncated: false,
    }),
    logs: async () => "",
    followLogs: async function* () {},
    isRunning: async () => true,
    watch: (_listener: (event: InstanceEvent) => void) => () => {},
    refresh: async () => {},
    revive: async () => true,
    stop: async () => {},
    stopSync: () => {},
    [Symbol.asyncDispose]: async () => {},
  };
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    ),
  );
}

describe("instance pool failover", () => {
  let good: Server;
  let dropping: Server;
  let goodUrl: string;
  let droppingUrl: string;
  let refusingUrl: string;

  beforeAll(async () => {
    good = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        if (req.url === "/health") return res.end('{"status":"ok"}');
        const { kwargs } = JSON.parse(body) as { kwargs: { a: number; b: number } };
        res.end(JSON.stringify({ status: "success", result: kwargs.a + kwargs.b, error: null }));
      });
    });
    dropping = createServer((req) => {
      req.resume();
      req.on("end", () => req.socket.destroy()); // read the request, then vanish: it was delivered
    });
    goodUrl = await listen(good);
    droppingUrl = await listen(dropping);
    const closed = createServer();
    refusingUrl = await listen(closed);
    await new Promise((r) => closed.close(r)); // nothing listens there any more: connections are refused
  });

  afterAll(() => {
    good.close();
    dropping.close();
  });

  it("moves a call to another replica when its connection was refused (never sent)", async () => {
    const pool = new InstancePool(
      [standIn("refusing", refusingUrl), standIn("good", goodUrl)],
      createLoadBalancer("round_robin"),
    );
    try {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => pool.call("add", [], { a: i, b: 1 }, { timeoutMs: 5_000 })),
      );
      expect(results).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
      const [refusing, ok] = pool.getStats().instances;
      expect(refusing?.healthy).toBe(false);
      expect(refusing?.failures).toBeGreaterThanOrEqual(1);
      expect(ok?.failures).toBe(0);
    } finally {
      await pool.close(false);
    }
  });

  it("does not retry a call that reached a server, unless it is declared idempotent", async () => {
    const pool = new InstancePool(
      [standIn("dropping", droppingUrl), standIn("good", goodUrl)],
      createLoadBalancer("round_robin"),
    );
    try {
      const error = await pool.call("add", [], { a: 1, b: 2 }, { timeoutMs: 5_000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectionError);
      expect((error as ConnectionError).delivered).toBe(true);
      expect((error as Error).message).toMatch(
        /may have run.*not retried, as the call is not marked idempotent/,
      );
      expect(pool.getStats().instances[1]?.requests).toBe(0); // not retried elsewhere
    } finally {
      await pool.close(false);
    }
    const retrying = new InstancePool(
      [standIn("dropping", droppingUrl), standIn("good", goodUrl)],
      createLoadBalancer("round_robin"),
    );
    try {
      expect(await retrying.call("add", [], { a: 1, b: 2 }, { timeoutMs: 5_000, idempotent: true })).toBe(3);
    } finally {
      await retrying.close(false);
    }
  });

  it("fails with the last connection error when every replica failed", async () => {
    const pool = new InstancePool([standIn("refusing", refusingUrl)], createLoadBalancer("random"));
    try {
      const error = await pool.call("add", [], { a: 1, b: 2 }, { timeoutMs: 2_000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectionError);
      expect((error as ConnectionError).delivered).toBe(false);
    } finally {
      await pool.close(false);
    }
  });
});
