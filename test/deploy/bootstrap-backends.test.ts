import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Host } from "../../src/host/host.js";
import { BACKEND_NAMES, bootstrapBackend } from "../../src/deploy/bootstrap/index.js";
import type { BackendName } from "../../src/deploy/bootstrap/index.js";
import { ValidationError } from "../../src/errors.js";

const dir = mkdtempSync(join(tmpdir(), "affinetes-test-bootstrap-wrap-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a wrapped command line as a host's login shell would (bash -c), from another folder. */
function sh(line: string, env: NodeJS.ProcessEnv = process.env) {
  const result = spawnSync("bash", ["-c", line], { cwd: "/", env, encoding: "utf8" });
  return { stdout: result.stdout, stderr: result.stderr, status: result.status };
}

function folder(name: string): string {
  const path = join(dir, name);
  mkdirSync(path, { recursive: true });
  return path;
}

function executable(path: string, script: string): void {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, `#!/bin/sh\n${script}\n`);
  chmodSync(path, 0o755);
}

/** Backend contracts that need no host: names, validation and the command lines `wrap` builds. */
describe("bootstrap backends (no host)", () => {
  it("bootstrapBackend gives each backend by name and refuses any other with ValidationError", () => {
    expect(BACKEND_NAMES.map((name) => bootstrapBackend(name).name)).toEqual([...BACKEND_NAMES]);
    for (const bad of ["pip", "", "toString", "__proto__"]) {
      expect(() => bootstrapBackend(bad as BackendName)).toThrow(ValidationError);
    }
    expect(() => bootstrapBackend("conda" as BackendName)).toThrow(
      /unknown backend "conda"; expected one of npm/,
    );
  });

  it("wrap exports values verbatim, runs in the workspace, and keeps the command's exit code", () => {
    const ws = folder("plain");
    const value = `it's "quoted": $HOME \\ \`echo no\` $(echo no)\nsecond line`;
    const line = bootstrapBackend("none").wrap(
      'printf "%s|" "$PWD" "$V"; echo bg & wait # a trailing comment',
      ws,
      { V: value },
    );
    expect(sh(line)).toEqual({ stdout: `${ws}|${value}|bg\n`, stderr: "", status: 0 });
    expect(sh(bootstrapBackend("none").wrap("exit 3", ws)).status).toBe(3);
  });

  it("wrap runs nothing when the workspace is missing", () => {
    const result = sh(bootstrapBackend("none").wrap("echo ran", join(dir, "missing")));
    expect(result.status).not.toBe(0);
    expect(result.stdout).toBe("");
  });

  it("wrap expands a leading ~/ to the home folder", () => {
    const home = folder("home");
    folder("home/project");
    const result = sh(bootstrapBackend("none").wrap("pwd", "~/project"), { ...process.env, HOME: home });
    expect(result.stdout).toBe(`${home}/project\n`);
  });

  it("npm's wrap puts node_modules/.bin first on the PATH; the caller's env still wins", () => {
    const ws = folder("npm");
    executable(join(ws, "node_modules/.bin/fixture-tool"), 'echo "tool in $PWD"');
    expect(sh(bootstrapBackend("npm").wrap("fixture-tool", ws)).stdout).toBe(`tool in ${ws}\n`);
    const own = sh(bootstrapBackend("npm").wrap('printf %s "$PATH"', ws, { PATH: "/usr/bin:/bin" }));
    expect(own.stdout).toBe("/usr/bin:/bin");
  });

  it("venv's and uv's wrap activate the workspace's .venv", () => {
    const ws = folder("venv");
    executable(join(ws, ".venv/bin/python"), 'echo "venv python, VIRTUAL_ENV=$VIRTUAL_ENV"');
    for (const name of ["venv", "uv"] as const) {
      expect(sh(bootstrapBackend(name).wrap("python", ws)).stdout).toBe(
        `venv python, VIRTUAL_ENV=${ws}/.venv\n`,
      );
    }
  });

  it("docker's wrap runs a labelled throw-away container of the recorded image, the workspace mounted", () => {
    const ws = folder("docker");
    const line = bootstrapBackend("docker").wrap("echo hi", ws, { FOO: "bar baz" });
    expect(line).toContain("docker run --rm --label affinetes.deploy=1");
    expect(line).toContain('-v "$PWD":/workspace -w /workspace');
    expect(line).toContain("-e 'FOO=bar baz'");
    expect(line).toContain(`"$image" sh -c 'echo hi'`);
    // Not prepared: a clear message, and docker is never started.
    const result = sh(line);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(
      /no image recorded in \.affinetes\/bootstrap-docker\.image; prepare the workspace first/,
    );
  });

  it("wrap refuses names sh cannot export and empty commands, for every backend", () => {
    for (const name of BACKEND_NAMES) {
      const backend = bootstrapBackend(name);
      expect(() => backend.wrap("true", dir, { "A;rm -rf x": "1" }), name).toThrow(ValidationError);
      expect(() => backend.wrap("true", dir, { "1A": "1" }), name).toThrow(ValidationError);
      expect(() => backend.wrap("  ", dir), name).toThrow(ValidationError);
    }
  });

  it("prepare refuses a project Docker cannot name and extras uv cannot name, before reaching the host", async () => {
    const host = {} as Host; // never used: validation comes first
    await expect(bootstrapBackend("docker").prepare(host, dir, { project: "My Project" })).rejects.toThrow(
      ValidationError,
    );
    await expect(
      bootstrapBackend("uv").prepare(host, dir, { project: "p", extras: ["ok", "--no-sync"] }),
    ).rejects.toThrow(/"--no-sync" is not an extra name/);
  });
});
