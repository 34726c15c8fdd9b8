import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ExecResult, HostExecOptions } from "../../src/host/command.js";
import type { Host } from "../../src/host/host.js";
import type { RemoteStat } from "../../src/host/host-files.js";
import { runLocal } from "../../src/host/local-command.js";
import { bootstrapBackend, detectBackend } from "../../src/deploy/bootstrap/index.js";
import { CommandError } from "../../src/errors.js";
import { fixturePath } from "../helpers/paths.js";

const root = mkdtempSync(join(tmpdir(), "affinetes-test-bootstrap-uv-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/**
 * Stands in for uv, which cannot be installed on this machine (no wheel in the local
 * index, no package): it logs how it was called and does what `uv sync` leaves behind
 * (a .venv, a uv.lock when there was none), so the backend's command lines and
 * bookkeeping are checked. The real uv runs in the conformance suite wherever it is installed.
 */
const FAKE_UV = `#!/bin/sh
echo "$* | UV_PROJECT_ENVIRONMENT=$UV_PROJECT_ENVIRONMENT" >> "$UV_CALLS"
case "$1" in
  --version) echo "uv 0.0.0 (stand-in)" ;;
  sync)
    if grep -q affinetes-no-such-package pyproject.toml; then
      echo "error: affinetes-no-such-package-xyz was not found in the package registry" >&2; exit 1
    fi
    echo "Resolved 2 packages in 1ms" >&2
    mkdir -p .venv/bin
    printf '#!/bin/sh\\necho "stand-in python in $VIRTUAL_ENV"\\n' > .venv/bin/python
    chmod +x .venv/bin/python
    [ -f uv.lock ] || echo "version = 1" > uv.lock ;;
esac
`;

/** The part of `Host` the bootstrap backends use, run on this machine with its own PATH and HOME. */
function localHost(env: NodeJS.ProcessEnv): Host {
  const stub = {
    label: "local stand-in host",
    exec: (command: string, options: HostExecOptions = {}): Promise<ExecResult> =>
      runLocal(command, { ...options, processEnv: env, cwd: options.cwd ?? (env.HOME as string) }),
    readFile: (path: string) => readFile(path).catch(() => undefined),
    writeFile: (path: string, data: string | Buffer) => writeFile(path, data),
    stat: async (path: string): Promise<RemoteStat | undefined> => {
      const s = await stat(path).catch(() => undefined);
      return s && { size: s.size, mtime: s.mtimeMs / 1000, isDirectory: s.isDirectory() };
    },
    mkdir: async (path: string) => {
      await mkdir(path, { recursive: true });
    },
    home: async () => env.HOME as string,
    resolvePath: async (path: string) =>
      path.startsWith("~/") ? join(env.HOME as string, path.slice(2)) : path,
  };
  return stub as unknown as Host;
}

function machine(name: string, uvIn: "path" | "home" | "nowhere") {
  const home = join(root, name, "home");
  const bin = join(root, name, "bin");
  mkdirSync(home, { recursive: true });
  mkdirSync(bin, { recursive: true });
  const calls = join(root, name, "uv-calls.log");
  writeFileSync(calls, "");
  const uvDir = uvIn === "path" ? bin : uvIn === "home" ? join(home, ".local", "bin") : undefined;
  if (uvDir) {
    mkdirSync(uvDir, { recursive: true });
    writeFileSync(join(uvDir, "uv"), FAKE_UV);
    chmodSync(join(uvDir, "uv"), 0o755);
  }
  const env = { ...process.env, HOME: home, PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`, UV_CALLS: calls };
  const ws = join(home, "project");
  cpSync(fixturePath("deploy/uv"), ws, { recursive: true });
  const syncs = () =>
    readFileSync(calls, "utf8")
      .split("\n")
      .filter((l) => l.startsWith("sync"));
  return { host: localHost(env), ws, syncs };
}

/** The uv backend's own logic, against a stand-in `uv` (the real one is not installable here). */
describe("uv backend with a stand-in uv", () => {
  const uv = bootstrapBackend("uv");

  it("finds uv on the PATH or where its installer puts it, and says so when it is nowhere", async () => {
    expect(await uv.unavailable(machine("on-path", "path").host)).toBeUndefined();
    expect(await uv.unavailable(machine("in-home", "home").host)).toBeUndefined();
    expect(await uv.unavailable(machine("none", "nowhere").host)).toMatch(
      /uv not found on local stand-in host/,
    );
    await expect(uv.prepare(machine("none2", "nowhere").host, "~/project", { project: "p" })).rejects.toThrow(
      /uv bootstrap is unavailable on local stand-in host/,
    );
  });

  it("syncs with the extras into .venv, records the lockfile it wrote, then skips; --locked once there is a lock", async () => {
    const { host, ws, syncs } = machine("sync", "home");
    const lines: string[] = [];
    const first = await uv.prepare(host, "~/project", {
      project: "p",
      extras: ["test", "dev", "test"],
      onOutput: (l) => lines.push(l),
    });
    expect(first).toMatchObject({
      skipped: false,
      detail: "uv sync: 2 packages (extras: dev, test)",
    });
    expect(lines).toContain("Resolved 2 packages in 1ms");
    expect(syncs()).toEqual(["sync --extra dev --extra test | UV_PROJECT_ENVIRONMENT=.venv"]);
    expect(existsSync(join(ws, "uv.lock"))).toBe(true);

    expect((await uv.prepare(host, ws, { project: "p", extras: ["dev", "test"] })).skipped).toBe(true);
    // Other extras are other inputs; now the lockfile exists and is enforced.
    expect((await uv.prepare(host, ws, { project: "p", extras: ["test"] })).skipped).toBe(false);
    expect(syncs().at(-1)).toBe("sync --locked --extra test | UV_PROJECT_ENVIRONMENT=.venv");
    expect(syncs()).toHaveLength(2);

    const run = await host.exec(uv.wrap("python", "~/project"));
    expect(run.stdout).toBe(`stand-in python in ${ws}/.venv\n`);
  });

  it("a failing sync throws CommandError with uv's message", async () => {
    const { host, ws } = machine("broken", "path");
    cpSync(fixturePath("deploy/uv-broken/pyproject.toml"), join(ws, "pyproject.toml"));
    const error = await uv.prepare(host, ws, { project: "p" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).stderr).toMatch(/affinetes-no-such-package-xyz was not found/);
  });

  it("detectBackend prefers uv for a pyproject.toml when the host has uv", async () => {
    const { host } = machine("detect", "path");
    expect(await detectBackend(host, "~/project")).toBe("uv");
  });
});
