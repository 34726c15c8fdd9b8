import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Host } from "../../src/host/host.js";
import { pushProject } from "../../src/deploy/push.js";
import { AbortedError, CommandError, TimeoutError, ValidationError } from "../../src/errors.js";
import { deployHosts, hasDeployHosts } from "../helpers/deploy-hosts.js";

/** Writes files (path → content, mode 0644) under `dir`, creating folders. */
function tree(dir: string, files: Record<string, string>): string {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
    chmodSync(join(dir, path), 0o644);
  }
  return dir;
}

/** Pushing a project to a workspace on the real sshd host, incrementally. */
describe.skipIf(!hasDeployHosts)("pushProject", () => {
  let host: Host;
  let root: string;
  let local: string;

  beforeAll(async () => {
    host = await Host.connect(deployHosts[0].url);
  });

  afterAll(() => host?.close());

  beforeEach(() => {
    // hosts b and c are this machine's root: a root of its own keeps each test apart
    root = `/tmp/affinetes-test-deploy-${randomBytes(6).toString("hex")}`;
    local = mkdtempSync(join(tmpdir(), "affinetes-test-push-"));
  });

  afterEach(async () => {
    await host.exec(`rm -rf ${root}`);
    rmSync(local, { recursive: true, force: true });
  });

  /** The workspace's files and symlinks: path → "mode type" (find's %m %y). */
  async function remoteTree(workspace: string): Promise<Record<string, string>> {
    const r = await host.exec(`cd ${workspace} && find . -mindepth 1 ! -type d -printf '%P\\t%m %y\\n'`);
    expect(r.exitCode, r.stderr).toBe(0);
    return Object.fromEntries(
      r.stdout
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((line) => line.split("\t") as [string, string]),
    );
  }

  async function remoteText(path: string): Promise<string | undefined> {
    return (await host.readFile(path))?.toString("utf8");
  }

  it("sends a git work tree's files, not ignored or excluded ones, keeping modes and symlinks", async () => {
    const repo = tree(join(local, "demo"), {
      ".gitignore": "*.tmp\nbuild/\n",
      "README.md": "# demo\n",
      "run.sh": "#!/bin/sh\necho hi\n",
      "src/main.py": "print('main')\n",
      "src/pkg/util.py": "X = 1\n",
      "scratch.tmp": "ignored by git",
      "build/out.bin": "ignored by git",
      "data/big.csv": "excluded by the option",
      "untracked.txt": "not added, not ignored",
    });
    chmodSync(join(repo, "run.sh"), 0o755);
    symlinkSync("README.md", join(repo, "readme-link"));
    execFileSync("git", ["init", "-q"], { cwd: repo });
    execFileSync("git", ["add", ".gitignore", "README.md", "run.sh", "src", "readme-link"], { cwd: repo });
    const progress: Array<{ files: number; totalFiles: number; bytes: number }> = [];

    const report = await pushProject(host, {
      localPath: repo,
      root,
      exclude: ["*.csv"],
      onProgress: (p) => progress.push(p),
    });

    const workspace = `${root}/workspaces/demo`;
    const expected = [".gitignore", "README.md", "readme-link", "run.sh", "src/main.py", "src/pkg/util.py"];
    expect(report).toMatchObject({ workspace, deleted: [], unchanged: 0 });
    expect(report.sent.sort()).toEqual([...expected, "untracked.txt"].sort());
    expect(await remoteTree(workspace)).toEqual({
      ".gitignore": "644 f",
      "README.md": "644 f",
      "readme-link": "777 l",
      "run.sh": "755 f",
      "src/main.py": "644 f",
      "src/pkg/util.py": "644 f",
      "untracked.txt": "644 f",
    });
    expect(await remoteText(`${workspace}/src/pkg/util.py`)).toBe("X = 1\n");
    expect(await remoteText(`${workspace}/run.sh`)).toBe("#!/bin/sh\necho hi\n");
    expect((await host.exec(`readlink ${workspace}/readme-link`)).stdout.trim()).toBe("README.md");
    const contentBytes = [
      ".gitignore",
      "README.md",
      "run.sh",
      "src/main.py",
      "src/pkg/util.py",
      "untracked.txt",
    ]
      .map((path) => statSync(join(repo, path)).size)
      .reduce((a, b) => a + b);
    expect(report.bytes).toBe(contentBytes);
    expect(progress.at(-1)).toEqual({ files: 7, totalFiles: 7, bytes: contentBytes });
    // The manifest sits outside the workspace, so the project cannot see or clobber it.
    expect(await host.stat(`${root}/workspaces/.manifests/demo.json`)).toBeDefined();
  });

  it("sends only what changed, and deletes only files it pushed itself", async () => {
    const dir = tree(join(local, "app"), {
      "a.txt": "a",
      "b.txt": "b",
      "nested/deep/c.txt": "c",
      "tool.sh": "echo tool",
      "node_modules/dep/index.js": "left out of a walk",
    });
    const first = await pushProject(host, { localPath: dir, root });
    expect(first.sent.sort()).toEqual(["a.txt", "b.txt", "nested/deep/c.txt", "tool.sh"]);
    const workspace = first.workspace;

    const again = await pushProject(host, { localPath: dir, root });
    expect(again).toMatchObject({ sent: [], deleted: [], unchanged: 4, bytes: 0 });

    writeFileSync(join(dir, "b.txt"), "b changed");
    expect(await pushProject(host, { localPath: dir, root })).toMatchObject({
      sent: ["b.txt"],
      deleted: [],
      unchanged: 3,
      bytes: 9,
    });
    expect(await remoteText(`${workspace}/b.txt`)).toBe("b changed");

    // touched, same content: nothing travels; the same size with new content and time: it does
    utimesSync(join(dir, "a.txt"), new Date(), new Date(Date.now() + 5_000));
    expect((await pushProject(host, { localPath: dir, root })).sent).toEqual([]);
    writeFileSync(join(dir, "a.txt"), "A");
    utimesSync(join(dir, "a.txt"), new Date(), new Date(Date.now() + 10_000));
    expect((await pushProject(host, { localPath: dir, root })).sent).toEqual(["a.txt"]);
    expect(await remoteText(`${workspace}/a.txt`)).toBe("A");

    chmodSync(join(dir, "tool.sh"), 0o755); // a mode change travels too
    expect((await pushProject(host, { localPath: dir, root })).sent).toEqual(["tool.sh"]);

    // What the remote made itself stays: results, its own node_modules.
    const made = await host.exec(
      `mkdir -p ${workspace}/results ${workspace}/node_modules/x && echo r > ${workspace}/results/out.txt && ` +
        `echo m > ${workspace}/node_modules/x/index.js`,
    );
    expect(made.exitCode).toBe(0);
    unlinkSync(join(dir, "nested/deep/c.txt"));
    const afterDelete = await pushProject(host, { localPath: dir, root });
    expect(afterDelete).toMatchObject({ sent: [], deleted: ["nested/deep/c.txt"], unchanged: 3 });
    expect(await remoteTree(workspace)).toEqual({
      "a.txt": "644 f",
      "b.txt": "644 f",
      "tool.sh": "755 f",
      "results/out.txt": "644 f",
      "node_modules/x/index.js": "644 f",
    });
    expect(await host.stat(`${workspace}/nested`)).toBeUndefined(); // the folders it emptied went too
  });

  it("sends everything again when the remote workspace was removed", async () => {
    const dir = tree(join(local, "again"), { "one.txt": "1", "two/two.txt": "2" });
    const first = await pushProject(host, { localPath: dir, root, project: "renamed" });
    expect(first.workspace).toBe(`${root}/workspaces/renamed`);
    await host.exec(`rm -rf ${first.workspace}`);
    const report = await pushProject(host, { localPath: dir, root, project: "renamed" });
    expect(report.sent.sort()).toEqual(["one.txt", "two/two.txt"]);
    expect(await remoteText(`${first.workspace}/two/two.txt`)).toBe("2");
  });

  it("an aborted push stops the transfer, and the next push sends what it did not confirm", async () => {
    const dir = tree(join(local, "cut"), { "a.txt": "first", "b.txt": "second" });
    const controller = new AbortController();
    const cut = pushProject(host, {
      localPath: dir,
      root,
      signal: controller.signal,
      onProgress: (p) => p.files === 1 && controller.abort(),
    });
    await expect(cut).rejects.toBeInstanceOf(AbortedError);
    const report = await pushProject(host, { localPath: dir, root });
    expect(report.sent).toEqual(["a.txt", "b.txt"]);
    expect(await remoteText(`${report.workspace}/b.txt`)).toBe("second");
  });

  it("refuses bad options and reports failures with typed errors", async () => {
    const dir = tree(join(local, "ok"), { "f.txt": "f" });
    const noPath = pushProject(host, { root } as unknown as Parameters<typeof pushProject>[1]);
    await expect(noPath).rejects.toMatchObject({ name: "ValidationError", option: "localPath" });
    await expect(pushProject(host, { localPath: join(local, "missing"), root })).rejects.toBeInstanceOf(
      ValidationError,
    );
    for (const project of ["has space", "..", ".manifests", "a/b"]) {
      await expect(pushProject(host, { localPath: dir, root, project }), project).rejects.toMatchObject({
        name: "ValidationError",
        option: "project",
      });
    }
    const aborted = AbortSignal.abort();
    await expect(pushProject(host, { localPath: dir, root, signal: aborted })).rejects.toBeInstanceOf(
      AbortedError,
    );
    await expect(pushProject(host, { localPath: dir, root, timeoutMs: 1 })).rejects.toBeInstanceOf(
      TimeoutError,
    );
    // The remote cannot create the workspace: its mkdir's failure, with stderr.
    const failed = pushProject(host, {
      localPath: dir,
      root: `/proc/affinetes-${randomBytes(3).toString("hex")}`,
    });
    await expect(failed).rejects.toBeInstanceOf(CommandError);
    await expect(failed).rejects.toThrow(/mkdir/);
  });
});
