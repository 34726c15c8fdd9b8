import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { excludeMatcher, hashFile, listProjectFiles, mapLimit } from "../../src/deploy/project-files.js";

const temp = mkdtempSync(join(tmpdir(), "affinetes-project-files-"));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

/** Writes files (path → content) under `dir`, creating folders. */
function tree(dir: string, files: Record<string, string>): string {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

function git(dir: string, ...args: string[]): void {
  execFileSync("git", args, { cwd: dir, stdio: "ignore" });
}

describe("excludeMatcher (gitignore-style)", () => {
  it("matches a name without a slash at any depth, one with a slash from the root", () => {
    const excluded = excludeMatcher(["*.log", "/build", "docs/internal"]);
    expect(
      ["a.log", "x/y/a.log", "build", "build/out.js", "docs/internal/a.md"].filter(excluded),
    ).toHaveLength(5);
    expect(["a.txt", "src/build", "src/build/x", "x/docs/internal/a.md", "log"].filter(excluded)).toEqual([]);
  });

  it("matches a trailing-slash pattern only as a folder, with everything under it", () => {
    const excluded = excludeMatcher(["cache/"]);
    expect(excluded("cache/a")).toBe(true);
    expect(excluded("x/cache/b/c")).toBe(true);
    expect(excluded("cache")).toBe(false); // a file named cache
  });

  it("takes files back with !, and ignores comments and blank lines", () => {
    const excluded = excludeMatcher(["# a comment", "", "*.tmp", "!keep.tmp"]);
    expect(excluded("a.tmp")).toBe(true);
    expect(excluded("d/keep.tmp")).toBe(false);
    expect(excluded("# a comment")).toBe(false);
    expect(excludeMatcher([])("anything")).toBe(false);
  });
});

describe("listProjectFiles", () => {
  it("walks a plain folder, leaving out tool folders at any depth and excluded files", async () => {
    const dir = tree(join(temp, "plain"), {
      "main.py": "print(1)",
      "run.sh": "#!/bin/sh\n",
      "pkg/util.py": "x = 1",
      "pkg/__pycache__/util.pyc": "bytecode",
      "node_modules/left/index.js": "",
      "web/node_modules/left/index.js": "",
      ".venv/bin/python": "",
      ".git/config": "",
      ".affinetes/state": "",
      "notes.log": "",
    });
    chmodSync(join(dir, "run.sh"), 0o755);
    chmodSync(join(dir, "main.py"), 0o644);
    symlinkSync("main.py", join(dir, "link.py"));
    const files = await listProjectFiles(dir, ["*.log"]);
    expect(files.map((f) => f.path)).toEqual(["link.py", "main.py", "pkg/util.py", "run.sh"]);
    const byPath = Object.fromEntries(files.map((f) => [f.path, f]));
    expect(byPath["run.sh"]?.mode).toBe(0o755);
    expect(byPath["main.py"]).toMatchObject({ kind: "file", mode: 0o644, size: 8 });
    expect(byPath["link.py"]).toMatchObject({ kind: "symlink", linkname: "main.py" });
  });

  it("in a git work tree lists tracked and untracked files, not ignored or deleted ones", async () => {
    const repo = tree(join(temp, "repo"), {
      ".gitignore": "*.tmp\nbuild/\n",
      "README.md": "# demo",
      "app/main.py": "print(1)",
      "app/gone.py": "deleted from disk, still in the index",
      "app/lib/util.py": "x = 1",
      "app/scratch.tmp": "ignored",
      "app/build/out.bin": "ignored",
      "app/data.csv": "excluded",
      "app/new.py": "untracked",
    });
    git(repo, "init", "-q");
    git(repo, "add", ".gitignore", "README.md", "app/main.py", "app/gone.py", "app/lib/util.py");
    unlinkSync(join(repo, "app/gone.py"));
    expect((await listProjectFiles(repo)).map((f) => f.path)).toEqual([
      ".gitignore",
      "README.md",
      "app/data.csv",
      "app/lib/util.py",
      "app/main.py",
      "app/new.py",
    ]);
    // A subfolder of the work tree: paths relative to it.
    const files = await listProjectFiles(join(repo, "app"), ["*.csv"]);
    expect(files.map((f) => f.path)).toEqual(["lib/util.py", "main.py", "new.py"]);
  });
});

describe("small helpers", () => {
  it("hashFile is the sha256 of the content", async () => {
    const path = join(tree(join(temp, "hash"), { "f.bin": "hello" }), "f.bin");
    expect(await hashFile(path)).toBe(createHash("sha256").update("hello").digest("hex"));
  });

  it("mapLimit keeps the order and the limit", async () => {
    let running = 0;
    let most = 0;
    const out = await mapLimit([5, 1, 4, 2, 3], 2, async (n) => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, n));
      running--;
      return n * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30]);
    expect(most).toBe(2);
  });
});
