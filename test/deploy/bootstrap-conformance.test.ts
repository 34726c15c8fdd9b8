import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Host } from "../../src/host/host.js";
import { bootstrapBackend, detectBackend } from "../../src/deploy/bootstrap/index.js";
import type { BackendName, BootstrapOptions, BootstrapReport } from "../../src/deploy/bootstrap/index.js";
import { AbortedError, CommandError, NotFoundError, TimeoutError } from "../../src/errors.js";
import { testBaseImage } from "../helpers/docker.js";
import { fixturePath } from "../helpers/paths.js";
import { deployHosts, hasDeployHosts } from "../helpers/deploy-hosts.js";
import { until } from "../helpers/until.js";

const [target] = deployHosts; // c: an sshd no test kills
const runId = randomBytes(4).toString("hex");
// The SSH hosts are this machine: a local folder is a folder on host b too.
const root = `/tmp/affinetes-test-bootstrap-${runId}`;
const project = `bootstrap-test-${runId}`;
const ENV = { FOO: "bar baz", QUOTED: `it's "quoted": $HOME \\ $(echo no)` };

/** The Docker engine of host b, for checks and cleanup. */
function engine(...args: string[]): string {
  return execFileSync("docker", ["-H", `unix://${target.socket}`, ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** A fresh copy of a fixture under test/fixtures/deploy/, as a workspace on host b. */
function workspace(fixture: string, name = fixture): string {
  const path = join(root, `${name}-${randomBytes(3).toString("hex")}`);
  mkdirSync(root, { recursive: true });
  cpSync(fixturePath(`deploy/${fixture}`), path, { recursive: true });
  return path;
}

/** Pids of processes working in `dir` (install commands the deadline should have killed). */
function processesIn(dir: string): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        const cwd = readlinkSync(`/proc/${pid}/cwd`);
        return cwd === dir || cwd.startsWith(`${dir}/`);
      } catch {
        return false;
      }
    })
    .map(Number);
}

interface ConformanceCase {
  backend: BackendName;
  options?: Partial<BootstrapOptions>;
  /** What a prepare that did its work reports. */
  detail: RegExp;
  /** What the install writes to `onOutput` (undefined: nothing is installed). */
  output?: RegExp;
  /** A command run through `wrap` that proves the environment, and what it prints. */
  probe: string;
  proof: RegExp;
  /** The working directory commands see (default: the workspace). */
  cwd?: string;
  /** Changes an input: the next prepare runs again (`rerun: false` for a backend with no inputs). */
  change: (ws: string) => void;
  rerun: boolean;
  /** Changes what is not an input: the next prepare still skips. */
  noise: (ws: string) => void;
  /** A workspace whose prepare fails, and what the error must say. */
  failure: { workspace: () => string; error: typeof CommandError | typeof NotFoundError; says: RegExp };
}

const cases: ConformanceCase[] = [
  {
    backend: "npm",
    detail: /^npm ci: 0 packages$/,
    output: /up to date|added/,
    probe: 'printf "PATH=%s\\n" "$PATH"; node hello.js',
    proof: /hello from the npm fixture on node v\d+/,
    change: (ws) =>
      writeFileSync(join(ws, "package.json"), '{ "name": "affinetes-fixture-npm", "version": "1.0.1" }'),
    rerun: true,
    noise: (ws) => writeFileSync(join(ws, "notes.txt"), "not an input\n"),
    failure: { workspace: () => workspace("npm-broken"), error: CommandError, says: /Missing: left-pad/ },
  },
  {
    backend: "venv",
    detail: /^venv \.venv: 1 package from requirements\.txt$/,
    output: /six/,
    probe: 'printf "VIRTUAL_ENV=%s\\n" "$VIRTUAL_ENV"; python hello.py',
    proof: /six 1\.\d+\.\d+ in \/.*\/\.venv\n/,
    change: (ws) => writeFileSync(join(ws, "requirements.txt"), "six  # pinned later\n"),
    rerun: true,
    noise: (ws) => writeFileSync(join(ws, "other.py"), "print('not an input')\n"),
    failure: {
      workspace: () => workspace("venv-broken"),
      error: CommandError,
      says: /No matching distribution found for affinetes-no-such-package-xyz/,
    },
  },
  {
    backend: "uv",
    options: { extras: ["test"] },
    detail: /^uv sync: \d+ packages? \(extras: test\)$/,
    output: /Resolved/,
    probe: 'printf "VIRTUAL_ENV=%s\\n" "$VIRTUAL_ENV"; python hello.py',
    proof: /six 1\.\d+\.\d+ in \/.*\/\.venv\n/,
    change: (ws) => writeFileSync(join(ws, ".python-version"), "3.11\n"),
    rerun: true,
    noise: (ws) => writeFileSync(join(ws, "other.py"), "print('not an input')\n"),
    failure: {
      workspace: () => workspace("uv-broken"),
      error: CommandError,
      says: /affinetes-no-such-package-xyz/,
    },
  },
  {
    backend: "docker",
    detail: new RegExp(`^image affinetes-deploy/${project}:[0-9a-f]{12}$`),
    output: /Step 1\/\d+ : FROM|FROM affinetes\/python/,
    probe: "cat /etc/affinetes-fixture; test -f /.dockerenv && echo in-a-container; python3 hello.py",
    proof: /baked into the image\nin-a-container\nhello from the docker fixture on python 3\.11/,
    cwd: "/workspace",
    change: (ws) => writeFileSync(join(ws, "data.txt"), "part of the build context\n"),
    rerun: true,
    // .dockerignore leaves notes/ out of the build context.
    noise: (ws) => {
      mkdirSync(join(ws, "notes"), { recursive: true });
      writeFileSync(join(ws, "notes", "todo.txt"), "ignored by docker\n");
    },
    failure: {
      workspace: () => workspace("docker-broken"),
      error: CommandError,
      says: /about to fail[\s\S]*returned a non-zero code: 1|about to fail[\s\S]*exit code: 1/,
    },
  },
  {
    backend: "none",
    detail: /^nothing to prepare$/,
    probe: "sh hello.sh",
    proof: /hello from the none fixture/,
    change: (ws) => writeFileSync(join(ws, "more.sh"), "echo more\n"),
    rerun: false,
    noise: (ws) => writeFileSync(join(ws, "notes.txt"), "not an input\n"),
    failure: { workspace: () => join(root, "no-such-workspace"), error: NotFoundError, says: /not found/ },
  },
];

// Probed now, so that a backend the host cannot run is skipped (with its reason) rather than failed.
const host = hasDeployHosts ? await Host.connect(target.url) : undefined;
const unavailable = new Map<BackendName, string | undefined>(
  await Promise.all(
    cases.map(
      async (c) =>
        [c.backend, host ? await bootstrapBackend(c.backend).unavailable(host) : "no SSH host"] as const,
    ),
  ),
);
for (const [backend, reason] of unavailable) {
  if (reason && host) console.warn(`[affinetes tests] ${backend} bootstrap conformance skipped: ${reason}`);
}

/** Whether engine b had the base image before this suite shipped it there. */

describe.skipIf(!hasDeployHosts)("bootstrap backends on an SSH host (conformance)", () => {
  const connected = (): Host => host as Host;

  afterAll(() => {
    connected().close();
    rmSync(root, { recursive: true, force: true });
    for (const image of engine("images", "-q", "--filter", `label=affinetes.deploy.project=${project}`)
      .split("\n")
      .filter(Boolean)) {
      for (const id of engine("ps", "-aq", "--filter", `ancestor=${image}`).split("\n").filter(Boolean)) {
        engine("rm", "-f", id);
      }
      engine("rmi", "-f", image);
    }
    // the shipped base image stays: other tests may be using it on that engine now
  });

  it("every backend but uv is available on the host (uv is not installed here)", () => {
    for (const [backend, reason] of unavailable) {
      if (backend === "uv") expect(reason ?? "uv present").toMatch(/uv not found|uv present/);
      else expect(reason, backend).toBeUndefined();
    }
  });

  describe.each(cases)("$backend backend", (c) => {
    const reason = unavailable.get(c.backend);
    const backend = bootstrapBackend(c.backend);
    const options = (extra: Partial<BootstrapOptions> = {}): BootstrapOptions => ({
      project,
      timeoutMs: 120_000,
      ...c.options,
      ...extra,
    });
    let ws: string;
    let first: Promise<{ report: BootstrapReport; lines: string[] }> | undefined;
    /** The suite's workspace, prepared once (later tests build on it). */
    const prepared = () => {
      first ??= (async () => {
        const lines: string[] = [];
        const report = await backend.prepare(
          connected(),
          ws,
          options({ onOutput: (line) => lines.push(line) }),
        );
        return { report, lines };
      })();
      return first;
    };

    beforeAll(() => {
      if (reason) return;
      if (c.backend === "docker" && !engine("images", "-q", testBaseImage).trim()) {
        // The remote engines start empty and reach no registry: ship the base image.
        execFileSync("sh", ["-c", `docker save ${testBaseImage} | docker -H unix://${target.socket} load`]);
      }
      ws = workspace(c.backend);
    });

    it.skipIf(reason)("prepares the workspace, streaming the install's output", async () => {
      const { report, lines } = await prepared();
      expect(report).toMatchObject({ backend: c.backend, skipped: c.backend === "none" });
      expect(report.detail).toMatch(c.detail);
      expect(report.durationMs).toBeGreaterThanOrEqual(0);
      if (c.output) expect(lines.join("\n")).toMatch(c.output);
      else expect(lines).toEqual([]);
    });

    it.skipIf(reason)("skips a second prepare while its inputs are unchanged", async () => {
      const { report } = await prepared();
      const again = await backend.prepare(connected(), ws, options());
      expect(again).toMatchObject({ backend: c.backend, skipped: true, detail: report.detail });
      c.noise(ws);
      expect((await backend.prepare(connected(), ws, options())).skipped).toBe(true);
    });

    it.skipIf(reason)(
      "wrap runs a command in the environment, in the workspace, with env exported",
      async () => {
        await prepared();
        const command =
          'printf "FOO=%s\\n" "$FOO"; printf "QUOTED=%s\\n" "$QUOTED"; printf "PWD=%s\\n" "$PWD"; ' + c.probe;
        const result = await connected().exec(backend.wrap(command, ws, ENV));
        expect(result.stderr).not.toMatch(/error/i);
        expect(result.exitCode).toBe(0);
        expect(result.stdout).toContain("FOO=bar baz\n");
        expect(result.stdout).toContain(`QUOTED=${ENV.QUOTED}\n`);
        expect(result.stdout).toContain(`PWD=${c.cwd ?? ws}\n`);
        expect(result.stdout).toMatch(c.proof);
        if (c.backend === "npm") expect(result.stdout).toContain(`PATH=${ws}/node_modules/.bin:`);
        if (c.backend === "venv" || c.backend === "uv")
          expect(result.stdout).toContain(`VIRTUAL_ENV=${ws}/.venv\n`);
        // The command's exit code is the wrapped line's, and the same line works from any folder.
        const failing = await connected().exec(backend.wrap("exit 7", ws), { cwd: "/" });
        expect(failing.exitCode).toBe(7);
      },
    );

    it.skipIf(reason)("prepares again once an input changed, then skips again", async () => {
      const { report } = await prepared();
      c.change(ws);
      const changed = await backend.prepare(connected(), ws, options());
      expect(changed.skipped).toBe(!c.rerun);
      expect(changed.detail).toMatch(c.detail);
      expect((await backend.prepare(connected(), ws, options())).skipped).toBe(true);
      if (c.backend === "docker") {
        // A new context is a new image; the one it replaces is removed.
        expect(changed.detail).not.toBe(report.detail);
        const old = report.detail.replace(/^image /, "");
        expect(() => engine("image", "inspect", old)).toThrow();
        expect(
          engine("image", "inspect", "--format", "{{json .Config.Labels}}", changed.detail.slice(6)),
        ).toContain(`"affinetes.deploy.project":"${project}"`);
      }
      const probe = await connected().exec(backend.wrap(c.probe, ws));
      expect(probe.stdout).toMatch(c.proof);
    });

    it.skipIf(reason)(
      "a failing install throws its error, with the output, and records nothing",
      async () => {
        const broken = c.failure.workspace();
        const error = await backend.prepare(connected(), broken, options()).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(c.failure.error);
        if (error instanceof CommandError) {
          expect(`${error.stdout}\n${error.stderr}`).toMatch(c.failure.says);
          expect(error.exitCode).not.toBe(0);
        } else {
          expect((error as Error).message).toMatch(c.failure.says);
        }
        expect(existsSync(join(broken, ".affinetes", `bootstrap-${c.backend}.json`))).toBe(false);
      },
    );

    it.skipIf(reason)("an aborted signal stops prepare with AbortedError", async () => {
      const fresh = workspace(c.backend, `${c.backend}-aborted`);
      const error = await backend
        .prepare(connected(), fresh, options({ signal: AbortSignal.abort() }))
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AbortedError);
    });
  });

  it("a prepare past its timeoutMs kills the install and throws TimeoutError", async () => {
    const ws = workspace("venv", "venv-timeout");
    const backend = bootstrapBackend("venv");
    const started = Date.now();
    const error = await backend
      .prepare(connected(), ws, { project, timeoutMs: 1_500 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    // sshd ignores a channel's KILL: the backend kills the command's process group itself.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await until(() => processesIn(ws).length === 0, 10_000)).toBe(true);
    const state = join(ws, ".affinetes");
    expect(existsSync(state) ? readdirSync(state) : []).toEqual([]); // no marker, no process record left
  });

  it("an abort during the install kills it and throws AbortedError", async () => {
    const ws = workspace("venv", "venv-abort");
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 1_000);
    const error = await bootstrapBackend("venv")
      .prepare(connected(), ws, { project, signal: controller.signal })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AbortedError);
    expect(await until(() => processesIn(ws).length === 0, 10_000)).toBe(true);
    expect(existsSync(join(ws, ".affinetes", "bootstrap-venv.json"))).toBe(false);
  });

  it("detectBackend picks the backend of each fixture, language tooling before Docker", async () => {
    const uv = unavailable.get("uv") === undefined;
    const expected: Record<string, BackendName> = {
      npm: "npm",
      venv: "venv",
      uv: uv ? "uv" : "venv", // a pyproject.toml without uv on the host: pip in a venv
      docker: "docker",
      none: "none",
    };
    for (const [fixture, backend] of Object.entries(expected)) {
      expect(await detectBackend(connected(), workspace(fixture, `${fixture}-detect`)), fixture).toBe(
        backend,
      );
    }
    const both = workspace("docker", "docker-and-npm");
    cpSync(fixturePath("deploy/npm/package.json"), join(both, "package.json"));
    expect(await detectBackend(connected(), both)).toBe("npm");
    const toolsOnly = workspace("docker", "docker-and-tool-settings");
    writeFileSync(join(toolsOnly, "pyproject.toml"), "[tool.ruff]\nline-length = 100\n");
    expect(await detectBackend(connected(), toolsOnly)).toBe("docker");
  });
});
