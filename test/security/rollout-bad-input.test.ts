import { spawnSync } from "node:child_process";
import { Readable } from "node:stream";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasDocker, testBaseImage } from "../helpers/docker.js";
import type { SecuredService } from "./rollout-principals.js";
import { KEYS, securedService } from "./rollout-principals.js";

const hasBwrap = spawnSync("bwrap", ["--version"]).status === 0;

/** One bad request: a JSON value, or raw text (what JSON.stringify cannot write: 1e400, "__proto__" keys). */
interface Case {
  name: string;
  body?: unknown;
  raw?: string;
  contentType?: string;
  /** The expected status (default 400). */
  status?: number;
  /** The field a 400 names, or what its detail says. */
  field?: string;
  detail?: RegExp;
}

const big = (bytes: number) => "x".repeat(bytes);
const docker = { container_type: "docker", image: testBaseImage };
const manyEnv = (n: number, valueBytes: number) =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`V${i}`, big(valueBytes)]));

const startCases: Case[] = [
  { name: "no run_id", body: { environment_config: docker }, field: "run_id" },
  { name: "run_id a number", body: { run_id: 5, environment_config: docker }, field: "run_id" },
  { name: "empty run_id", body: { run_id: "", environment_config: docker }, field: "run_id" },
  {
    name: "run_id of 201 characters",
    body: { run_id: big(201), environment_config: docker },
    field: "run_id",
  },
  {
    name: "NUL in run_id",
    body: { run_id: "a\u0000b", environment_config: docker },
    detail: /control characters/,
  },
  { name: "newline in run_id", body: { run_id: "a\nb", environment_config: docker }, field: "run_id" },
  { name: "unknown field", body: { run_id: "u", environment_config: docker, shell: "zsh" }, field: "shell" },
  {
    name: "unknown field in environment_config",
    body: { run_id: "u", environment_config: { ...docker, privileged: true } },
    field: "environment_config.privileged",
  },
  { name: "container_type vm", body: { run_id: "u", environment_config: { container_type: "vm" } } },
  { name: "environment_config a number", body: { run_id: "u", environment_config: 42 } },
  { name: "environment_config an array", body: { run_id: "u", environment_config: [] } },
  { name: "environment_config null", body: { run_id: "u", environment_config: null } },
  {
    name: "timeout 1e12",
    body: { run_id: "u", environment_config: { ...docker, timeout: 1e12 } },
    detail: /at most 86400 seconds/,
  },
  { name: "flat timeout 1e12", body: { run_id: "u", ...flat(), timeout: 1e12 }, field: "timeout" },
  { name: "timeout 0", body: { run_id: "u", environment_config: { ...docker, timeout: 0 } } },
  { name: "timeout -1", body: { run_id: "u", environment_config: { ...docker, timeout: -1 } } },
  { name: "timeout a string", body: { run_id: "u", environment_config: { ...docker, timeout: "10" } } },
  {
    name: "timeout 1e400 (Infinity)",
    raw: `{"run_id":"u","environment_config":{"container_type":"docker","image":"x","timeout":1e400}}`,
  },
  {
    name: "env name not an identifier",
    body: { run_id: "u", environment_config: { ...docker, env: { "1X": "a" } } },
    detail: /identifiers/,
  },
  { name: "env name with =", body: { run_id: "u", environment_config: { ...docker, env: { "A=B": "a" } } } },
  {
    name: "NUL in an env value",
    body: { run_id: "u", environment_config: { ...docker, env: { A: "a\u0000b" } } },
    detail: /NUL/,
  },
  {
    name: "NUL in an env name",
    body: { run_id: "u", environment_config: { ...docker, env: { "A\u0000": "x" } } },
  },
  { name: "env value a number", body: { run_id: "u", environment_config: { ...docker, env: { A: 5 } } } },
  {
    name: "env __proto__",
    raw: `{"run_id":"u","environment_config":{"container_type":"docker","image":"x","env":{"__proto__":"x"}}}`,
  },
  {
    name: "300 env entries",
    body: { run_id: "u", environment_config: { ...docker, env: manyEnv(300, 1) } },
    detail: /at most 256/,
  },
  {
    name: "an env value of 70 KB",
    body: { run_id: "u", environment_config: { ...docker, env: { A: big(70_000) } } },
    detail: /longer than/,
  },
  {
    name: "600 KB of env in all",
    body: { run_id: "u", environment_config: { ...docker, env: manyEnv(10, 60_000) } },
    detail: /together/,
  },
  {
    name: "relative cwd",
    body: { run_id: "u", environment_config: { ...docker, cwd: "work" } },
    detail: /absolute/,
  },
  { name: "NUL in cwd", body: { run_id: "u", environment_config: { ...docker, cwd: "/a\u0000b" } } },
  {
    name: "cwd of 5000 bytes",
    body: { run_id: "u", environment_config: { ...docker, cwd: `/${big(5000)}` } },
  },
  { name: "image with a space", body: { run_id: "u", environment_config: { ...docker, image: "a b" } } },
  {
    name: "image of 600 characters",
    body: { run_id: "u", environment_config: { ...docker, image: big(600) } },
  },
  { name: "empty image", body: { run_id: "u", environment_config: { ...docker, image: "" } } },
  {
    name: "docker without an image",
    body: { run_id: "u", environment_config: { container_type: "docker" } },
    field: "environment_config.image",
  },
  {
    name: "resources a string",
    body: { run_id: "u", environment_config: { ...docker, resources: { cpus: "1" } } },
  },
  {
    name: "resource key with a space",
    body: { run_id: "u", environment_config: { ...docker, resources: { "a b": 1 } } },
  },
  {
    name: "resources 1e7 cpus",
    body: { run_id: "u", environment_config: { ...docker, resources: { cpus: 1e7 } } },
  },
  { name: "resources an array", body: { run_id: "u", environment_config: { ...docker, resources: [1] } } },
  {
    name: "40 resource keys",
    body: {
      run_id: "u",
      environment_config: {
        ...docker,
        resources: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 1])),
      },
    },
  },
  {
    name: "network partial",
    body: { run_id: "u", environment_config: { ...docker, network: "partial" } },
    field: "environment_config.network",
  },
  {
    name: "network allowlist entry not a host",
    body: { run_id: "u", environment_config: { ...docker, network: { allow: ["bad host!"] } } },
  },
  {
    name: "network allow not a list",
    body: { run_id: "u", environment_config: { ...docker, network: { allow: "x" } } },
  },
  {
    name: "network allowlist of 65 entries",
    body: {
      run_id: "u",
      environment_config: {
        ...docker,
        network: { allow: Array.from({ length: 65 }, (_, i) => `10.0.0.${i}`) },
      },
    },
  },
  { name: "network deny", body: { run_id: "u", environment_config: { ...docker, network: { deny: [] } } } },
  {
    name: "sbatch_args without --runner slurm",
    body: { run_id: "u", environment_config: { ...docker, sbatch_args: ["--time=1"] } },
    detail: /need --runner slurm/,
  },
  {
    name: "sbatch_args with a newline",
    body: { run_id: "u", environment_config: { ...docker, sbatch_args: ["--time=1\n#SBATCH --x"] } },
  },
  { name: "container_name of 300 characters", body: { run_id: "u", container_name: big(300), ...flat() } },
  { name: "unknown predefined entry", body: { run_id: "u", environment_config: "nope" }, status: 404 },
  {
    name: "constructor as an entry name",
    body: { run_id: "u", environment_config: "constructor" },
    status: 404,
  },
  {
    name: "a tool this server lacks",
    body: { run_id: "u", environment_config: { container_type: "enroot", image: "x" } },
  },
  {
    name: "host shell for a plain key",
    body: { run_id: "u", environment_config: { container_type: "local" } },
    status: 403,
  },
  { name: "not JSON", raw: "{nope" },
  { name: "a JSON array", raw: "[]" },
  { name: "a JSON string", raw: '"run"' },
  { name: "JSON null", raw: "null" },
  { name: "empty body", raw: "" },
  { name: "text/plain", raw: "run", contentType: "text/plain" },
  { name: "an unknown content type", raw: "run", contentType: "application/x-nope", status: 415 },
  { name: "a 3 MB body", raw: JSON.stringify({ run_id: "u", container_name: big(3_000_000) }), status: 413 },
];

function flat() {
  return { container_type: "docker", container_image: testBaseImage };
}

const executeCases = (runId: string): Case[] => [
  { name: "no cmd", body: { run_id: runId }, field: "cmd" },
  { name: "empty cmd", body: { run_id: runId, cmd: "" }, field: "cmd" },
  { name: "cmd a number", body: { run_id: runId, cmd: 5 }, field: "cmd" },
  { name: "NUL in cmd", body: { run_id: runId, cmd: "echo a\u0000b" }, detail: /NUL/ },
  { name: "a 200 KB cmd", body: { run_id: runId, cmd: `echo ${big(200_000)}` }, detail: /longer than/ },
  { name: "timeout 1e12", body: { run_id: runId, cmd: "true", timeout: 1e12 }, detail: /at most 86400/ },
  { name: "timeout 0", body: { run_id: runId, cmd: "true", timeout: 0 }, field: "timeout" },
  { name: "timeout -5", body: { run_id: runId, cmd: "true", timeout: -5 }, field: "timeout" },
  { name: "timeout a string", body: { run_id: runId, cmd: "true", timeout: "1" }, field: "timeout" },
  { name: "timeout 1e400", raw: `{"run_id":"${runId}","cmd":"true","timeout":1e400}` },
  { name: "NUL in cwd", body: { run_id: runId, cmd: "pwd", cwd: "/tmp\u0000x" }, field: "cwd" },
  {
    name: "a cwd that does not exist",
    body: { run_id: runId, cmd: "pwd", cwd: "/no/such/folder" },
    field: "cwd",
    detail: /\/no\/such\/folder is not a folder the command can enter/,
  },
  {
    name: "NUL in an env value",
    body: { run_id: runId, cmd: "true", env: { X: "a\u0000b" } },
    detail: /NUL/,
  },
  { name: "env name not an identifier", body: { run_id: runId, cmd: "true", env: { "1X": "a" } } },
  { name: "env name with =", body: { run_id: runId, cmd: "true", env: { "A=B": "a" } } },
  { name: "env __proto__", raw: `{"run_id":"${runId}","cmd":"true","env":{"__proto__":"x"}}` },
  { name: "300 env entries", body: { run_id: runId, cmd: "true", env: manyEnv(300, 1) } },
  { name: "unknown field", body: { run_id: runId, cmd: "true", shell: "zsh" }, field: "shell" },
  { name: "no run_id", body: { cmd: "true" }, field: "run_id" },
  { name: "unknown run_id", body: { run_id: "never-started", cmd: "true" }, status: 404 },
  { name: "a 3 MB body", raw: JSON.stringify({ run_id: runId, cmd: big(3_000_000) }), status: 413 },
];

const closeCases: Case[] = [
  { name: "no run_id", body: {}, field: "run_id" },
  { name: "run_id a number", body: { run_id: 1 }, field: "run_id" },
  { name: "NUL in run_id", body: { run_id: "a\u0000" }, field: "run_id" },
  { name: "run_id of 201 characters", body: { run_id: big(201) }, field: "run_id" },
  { name: "unknown field", body: { run_id: "x", force: true }, field: "force" },
  { name: "a JSON array", raw: "[]" },
];

const statsCases: Array<{ name: string; query: string }> = [
  { name: "NUL in run_id", query: "run_id=%00" },
  { name: "unknown parameter", query: "foo=1" },
  { name: "run_id twice", query: "run_id=a&run_id=b" },
  { name: "run_id of 300 characters", query: `run_id=${big(300)}` },
  { name: "empty container_name", query: "container_name=" },
];

/**
 * Issue 14, item 7: every bad input to the rollout routes gets a typed 4xx with a clear
 * `detail` (never a 500), nothing half-created is left, and the service keeps serving.
 */
describe.skipIf(!hasDocker || !hasBwrap)(
  "rollout service: every bad input is a 4xx and leaves nothing behind",
  () => {
    let service: SecuredService;
    const live = "bob-live";

    beforeAll(async () => {
      service = await securedService("--max-resources", '{"instances":5,"cpus":2}');
      const start = await service.as("bob", "/start_instance", {
        run_id: live,
        environment_config: { container_type: "bubblewrap" },
      });
      expect(start.status, JSON.stringify(start.json)).toBe(200);
    });

    afterAll(async () => {
      if (!service) return;
      const stats = (await service.as("admin", "/stats")).json as { instances: Array<{ run_id: string }> };
      for (const i of stats.instances) await service.as("admin", "/close_instance", { run_id: i.run_id });
      await service.stop();
    });

    /** Sends one case as bob; returns status and parsed answer. */
    async function send(path: string, c: Case): Promise<{ status: number; json: Record<string, unknown> }> {
      const body = c.raw ?? JSON.stringify(c.body);
      const res = await request(`${service.url}${path}`, {
        method: "POST",
        headers: { "content-type": c.contentType ?? "application/json", authorization: `Bearer ${KEYS.bob}` },
        body,
      });
      const text = await res.body.text();
      return { status: res.statusCode, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    }

    /** After each bad request: the service answers, holds exactly the live run, and charges nothing more. */
    async function stillWhole(): Promise<void> {
      expect((await service.as("bob", "/health")).status).toBe(200);
      const stats = (await service.as("admin", "/stats")).json as {
        instances: Array<{ run_id: string }>;
        allocated_resources: Record<string, number>;
      };
      expect(stats.instances.map((i) => i.run_id)).toEqual([live]);
      expect(stats.allocated_resources).toEqual({ instances: 1, cpus: 1 });
    }

    function check(c: Case, res: { status: number; json: Record<string, unknown> }): void {
      const what = `${c.name}: ${JSON.stringify(res.json).slice(0, 300)}`;
      expect(res.status, what).toBe(c.status ?? 400);
      expect(typeof res.json.detail, what).toBe("string");
      expect(String(res.json.detail), what).not.toMatch(/\n\s+at /); // no stack trace
      if (c.field) expect(res.json.field, what).toBe(c.field);
      if (c.detail) expect(String(res.json.detail), what).toMatch(c.detail);
    }

    it.each(startCases.map((c) => [c.name, c] as const))("start_instance: %s", async (_, c) => {
      check(c, await send("/start_instance", c));
      await stillWhole();
    });

    it.each(executeCases(live).map((c) => [c.name, c] as const))("execute_command: %s", async (_, c) => {
      check(c, await send("/execute_command", c));
      await stillWhole();
      const ok = await service.as("bob", "/execute_command", { run_id: live, cmd: "echo ok" });
      expect(ok.json.result).toMatchObject({ output: "ok\n", returncode: 0 });
    });

    it.each(closeCases.map((c) => [c.name, c] as const))("close_instance: %s", async (_, c) => {
      check(c, await send("/close_instance", c));
      await stillWhole();
    });

    it.each(statsCases.map((c) => [c.name, c] as const))("stats: %s", async (_, c) => {
      const res = await request(`${service.url}/stats?${c.query}`, {
        headers: { authorization: `Bearer ${KEYS.bob}` },
      });
      const json = (await res.body.json()) as Record<string, unknown>;
      expect(res.statusCode, JSON.stringify(json)).toBe(400);
      expect(typeof json.detail).toBe("string");
      await stillWhole();
    });

    it("get_available_resources: a POST or a bad key is a 4xx, the service answers", async () => {
      const post = await request(`${service.url}/get_available_resources`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEYS.bob}`, "content-type": "application/json" },
        body: "{}",
      });
      expect(post.statusCode).toBe(404);
      await post.body.dump();
      const badKey = await request(`${service.url}/get_available_resources`, {
        headers: { authorization: "Bearer not-a-key-0123456789" },
      });
      expect(badKey.statusCode).toBe(401);
      await badKey.body.dump();
      await stillWhole();
    });

    it("a streamed (chunked) body past the limit is refused (413) before it is read whole", async () => {
      const chunks = (function* () {
        yield '{"run_id":"s","cmd":"';
        for (let i = 0; i < 48; i++) yield big(64 * 1024);
        yield '"}';
      })();
      // The service answers 413 and closes as soon as the limit passes; the client may see
      // that answer, or (still writing) the closed connection: both are a refusal.
      const status = await request(`${service.url}/execute_command`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${KEYS.bob}` },
        body: Readable.from(chunks),
      }).then(
        async (res) => {
          await res.body.dump();
          return res.statusCode;
        },
        (err: NodeJS.ErrnoException) => err.code,
      );
      expect(["413", "EPIPE", "ECONNRESET", "UND_ERR_SOCKET"]).toContain(String(status));
      await stillWhole();
    });

    it("a cwd that does not exist is a 400 in a docker instance too; a relative one is taken from its folder", async () => {
      const start = await service.as("bob", "/start_instance", {
        run_id: "bob-docker",
        environment_config: { ...docker, cwd: "/work" },
      });
      expect(start.status, JSON.stringify(start.json)).toBe(200);
      try {
        const missing = await service.as("bob", "/execute_command", {
          run_id: "bob-docker",
          cmd: "pwd",
          cwd: "/no/such/folder",
        });
        expect(missing).toMatchObject({ status: 400, json: { field: "cwd" } });
        await service.as("bob", "/execute_command", { run_id: "bob-docker", cmd: "mkdir -p sub" });
        const relative = await service.as("bob", "/execute_command", {
          run_id: "bob-docker",
          cmd: "pwd",
          cwd: "sub",
        });
        expect(relative.json.result).toMatchObject({ output: "/work/sub\n" });
        // a quote in the path is a path, not shell
        const quoted = await service.as("bob", "/execute_command", {
          run_id: "bob-docker",
          cmd: "pwd",
          cwd: "/tmp/'; touch /tmp/pwned; '",
        });
        expect(quoted.status).toBe(400);
        const pwned = await service.as("bob", "/execute_command", {
          run_id: "bob-docker",
          cmd: "ls /tmp/pwned",
        });
        expect((pwned.json.result as { returncode: number }).returncode).not.toBe(0);
      } finally {
        await service.as("bob", "/close_instance", { run_id: "bob-docker" });
      }
    });
  },
);
