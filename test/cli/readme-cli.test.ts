import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { afs, afsBin } from "../helpers/afs.js";
import { hasDocker } from "../helpers/docker.js";
import { repoRoot } from "../helpers/paths.js";

const run = promisify(execFile);
const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
const section = readme.slice(readme.indexOf("## Command line"));
const commands = (/```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? "")
  .split("\n")
  .filter((line) => line.startsWith("afs "));

/** The README's command-line block, run line by line as a user would type it. */
describe.skipIf(!hasDocker)("README command line", () => {
  const cwd = mkdtempSync(join(tmpdir(), "afs-readme-"));
  symlinkSync(join(repoRoot, "examples"), join(cwd, "examples"));

  afterAll(async () => {
    await afs(["stop", "calc"]);
    await afs(["stop", "my-env"]);
  });

  it("has commands", () => {
    expect(commands.length).toBeGreaterThan(5);
  });

  it("runs every line successfully", async () => {
    const outputs: string[] = [];
    for (const line of commands) {
      const shell = line.replace(/^afs /, `"${process.execPath}" "${afsBin}" `);
      const { stdout } = await run("sh", ["-c", shell], { cwd, timeout: 120_000 }).catch(
        (e: { stderr?: string }) => {
          throw new Error(`README line failed: ${line}\n${e.stderr ?? String(e)}`);
        },
      );
      outputs.push(stdout);
    }
    const at = (prefix: string) => outputs[commands.findIndex((c) => c.startsWith(prefix))] ?? "";
    expect(at("afs call calc add").trim()).toBe("3");
    expect(at("afs call my-env hello").trim()).toBe('"Hello, you!"');
    expect(at("afs ls")).toMatch(/calc\s+calc-0/);
  });
});
