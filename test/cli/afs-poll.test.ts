import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceStats } from "../../src/cli/poll-view.js";
import { renderStats } from "../../src/cli/poll-view.js";
import { afs, afsBin } from "../helpers/afs.js";
import { killAndWait } from "../helpers/client-process.js";
import type { Service } from "../helpers/service.js";
import { call, serve } from "../helpers/service.js";
import { until } from "../helpers/until.js";

const stats: ServiceStats = {
  server_time: "2025-01-01T12:00:00.000Z",
  uptime_s: 192,
  service_id: "box:8008",
  active_instances: 1,
  total_instances: 2,
  max_resources: { instances: 10, cpus: 32 },
  allocated_resources: { instances: 2, cpus: 6 },
  available_resources: { instances: 8, cpus: 26 },
  instances: [
    {
      run_id: "rollout-0123456789-abcdefghijklmnopqrstuvwxyz",
      container_name: "worker",
      image: "registry.example.com/team/agent-environment:2025-01-01",
      type: "docker",
      state: "running",
      service_id: "box:8008",
      created_at: "2025-01-01T11:00:00.000Z",
      last_used_at: "2025-01-01T11:58:30.000Z",
      num_cmd: 7,
    },
  ],
};
const now = new Date("2025-01-01T12:00:00.000Z");

describe("renderStats (the frame of afs poll)", () => {
  it("shows the summary and the resources table, without instances unless asked", () => {
    const text = renderStats(stats, { list: false, now });
    expect(text).toContain("service id   box:8008");
    expect(text).toContain("server time  2025-01-01T12:00:00.000Z");
    expect(text).toContain("uptime       3m12s");
    expect(text).toContain("instances    1 active / 2 total");
    expect(text).toContain(
      [
        "RESOURCE   MAX  ALLOCATED  AVAILABLE",
        "instances  10   2          8",
        "cpus       32   6          26",
      ].join("\n"),
    );
    expect(text).not.toContain("RUN_ID");
  });

  it("with list, adds the instances with idle time and age measured to `now`", () => {
    const lines = renderStats(stats, { list: true, now }).split("\n");
    const header = lines.findIndex((l) => l.startsWith("RUN_ID"));
    expect(lines[header]?.split(/\s+/)).toEqual([
      "RUN_ID",
      "CONTAINER",
      "TYPE",
      "IMAGE",
      "STATE",
      "CMDS",
      "IDLE",
      "AGE",
    ]);
    expect(lines[header + 1]?.split(/\s+/)).toEqual([
      stats.instances[0]?.run_id,
      "worker",
      "docker",
      stats.instances[0]?.image,
      "running",
      "7",
      "1m30s",
      "1h00m",
    ]);
  });

  it("fits every line in the width, truncating the long values first", () => {
    const lines = renderStats(stats, { list: true, width: 72, now }).split("\n");
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(72);
    const row = lines.find((l) => l.startsWith("rollout-")) ?? "";
    expect(row).toContain("…");
    // the short columns survive whole; the run id and image gave way
    expect(row).toMatch(/running\s+7\s+1m30s\s+1h00m$/);
    expect(renderStats(stats, { list: true, now })).not.toContain("…");
  });

  it("says so when there are no tracked resources or instances", () => {
    const empty = {
      ...stats,
      max_resources: {},
      allocated_resources: {},
      available_resources: {},
      instances: [],
    };
    const text = renderStats(empty, { list: true, now });
    expect(text).toContain("no tracked resources");
    expect(text).toContain("no instances");
  });
});

describe("afs poll against a real service", () => {
  const runId = `poll-${process.pid}`;
  let service: Service | undefined;
  let guarded: Service | undefined;

  beforeAll(async () => {
    [service, guarded] = await Promise.all([
      serve("--max-resources", '{"instances":4,"cpus":8}'),
      serve("--api-key", "k"),
    ]);
    const start = await call(service, "/start_instance", {
      run_id: runId,
      environment_config: { container_type: "local" },
    });
    expect(start.status, JSON.stringify(start.json)).toBe(200);
  });

  afterAll(async () => {
    if (service) {
      await call(service, "/close_instance", { run_id: runId }).catch(() => undefined);
      await killAndWait(service.child, "SIGTERM");
    }
    if (guarded) await killAndWait(guarded.child, "SIGTERM");
  });

  it("--once --list prints one plain frame with the instance and the resources", async () => {
    const res = await afs(["poll", "--url", service!.url, "--once", "--list"]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain(runId);
    expect(res.stdout).toMatch(/^instances\s+4\s+1\s+3$/m);
    expect(res.stdout).toMatch(/^cpus\s+8\s+1\s+7$/m); // charged the default cpu
    expect(res.stdout).not.toContain("\x1b"); // not a terminal: no cursor control
  });

  it("--raw --once and --json print the stats document", async () => {
    for (const args of [["--raw", "--once"], ["--json"]]) {
      const res = await afs(["poll", "--url", service!.url, ...args]);
      expect(res.code, res.stderr).toBe(0);
      const doc = JSON.parse(res.stdout) as ServiceStats;
      expect(doc.instances.map((i) => i.run_id)).toContain(runId);
      expect(doc.available_resources).toEqual({ instances: 3, cpus: 7 });
    }
  });

  it("sends --api-key (or AFFINETES_API_KEY), and says when the service wants one", async () => {
    const url = guarded!.url;
    const noKey = { AFFINETES_API_KEY: undefined };
    expect((await afs(["poll", "--url", url, "--once", "--api-key", "k"], { env: noKey })).code).toBe(0);
    expect((await afs(["poll", "--url", url, "--once"], { env: { AFFINETES_API_KEY: "k" } })).code).toBe(0);
    const refused = await afs(["poll", "--url", url, "--once"], { env: noKey });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("the service wants an API key: --api-key");
  });

  it("exits 1 naming the URL when the service is unreachable, and 2 on bad flags", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const down = await afs(["poll", "--url", url, "--once"]);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain(url);
    expect((await afs(["poll", "--url", "ftp://example.com", "--once"])).code).toBe(2);
    expect((await afs(["poll", "--url", service!.url, "--interval", "0"])).code).toBe(2);
    expect((await afs(["poll", "--once"])).code).toBe(2);
  });

  it("keeps polling in live mode, frames separated by a blank line, and exits 0 on SIGINT", async () => {
    const child = spawn(process.execPath, [afsBin, "poll", "--url", service!.url, "--interval", "0.1"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const polled = await until(() => out.split("service id").length > 2, 20_000);
    const { code } = await killAndWait(child, "SIGINT");
    expect(polled, out).toBe(true);
    expect(code).toBe(0);
    expect(out).not.toContain("\x1b");
    expect(out).toContain("\n\nservice id");
  });
});

/** A port nothing listens on: one the OS just handed out and took back. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}
