import { randomBytes } from "node:crypto";
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Host } from "../../src/host/host.js";
import { syncResults } from "../../src/deploy/sync-results.js";
import { InfrastructureError, NotFoundError, ValidationError } from "../../src/errors.js";
import { shellQuote } from "../../src/util/shell-quote.js";
import { deployHosts, hasDeployHosts } from "../helpers/deploy-hosts.js";

/** Fetching a remote results folder on the real sshd host, skipping what is already here. */
describe.skipIf(!hasDeployHosts)("syncResults", () => {
  let host: Host;
  let remote: string;
  let local: string;

  beforeAll(async () => {
    host = await Host.connect(deployHosts[0].url);
  });

  afterAll(() => host?.close());

  beforeEach(() => {
    // hosts b and c are this machine's root: a folder of its own keeps each test apart
    remote = `/tmp/affinetes-test-deploy-${randomBytes(6).toString("hex")}`;
    local = mkdtempSync(join(tmpdir(), "affinetes-test-sync-"));
  });

  afterEach(async () => {
    await host.exec(`rm -rf ${remote}`);
    rmSync(local, { recursive: true, force: true });
  });

  /** Creates remote files (path → content) under `dir`. */
  async function remoteFiles(dir: string, files: Record<string, string>): Promise<void> {
    const script = Object.entries(files)
      .map(([path, content]) => {
        const full = shellQuote(`${dir}/${path}`);
        return `mkdir -p "$(dirname ${full})" && printf %s ${shellQuote(content)} > ${full}`;
      })
      .join(" && ");
    const r = await host.exec(script);
    expect(r.exitCode, r.stderr).toBe(0);
  }

  async function remoteMtime(path: string): Promise<number> {
    return Number((await host.exec(`stat -c %Y ${shellQuote(path)}`)).stdout.trim());
  }

  const files = {
    "summary.json": '{"ok":true}',
    "runs/1/metrics.csv": "step,loss\n1,0.5\n",
    "runs/1/logs/train.log": "epoch 1\n",
    "runs/2/model bin": "weights with a space",
    "-starts-with-dash.txt": "dash",
  };

  it("brings a nested tree back, then skips it, then fetches only what changed", async () => {
    await remoteFiles(remote, files);
    const progress: Array<{ files: number; totalFiles: number; bytes: number; totalBytes: number }> = [];

    const first = await syncResults(host, remote, join(local, "out"), {
      onProgress: (p) => progress.push(p),
    });

    const totalBytes = Object.values(files).reduce((n, c) => n + Buffer.byteLength(c), 0);
    expect(first).toEqual({ received: Object.keys(files).sort(), skipped: 0, bytes: totalBytes });
    for (const [path, content] of Object.entries(files)) {
      expect(readFileSync(join(local, "out", path), "utf8")).toBe(content);
    }
    const mtime = await remoteMtime(`${remote}/runs/1/metrics.csv`);
    expect(Math.floor(statSync(join(local, "out", "runs/1/metrics.csv")).mtimeMs / 1000)).toBe(mtime);
    expect(progress).toHaveLength(5);
    expect(progress.at(-1)).toEqual({ files: 5, totalFiles: 5, bytes: totalBytes, totalBytes });

    const second = await syncResults(host, remote, join(local, "out"));
    expect(second).toEqual({ received: [], skipped: 5, bytes: 0 });

    await remoteFiles(remote, { "runs/1/metrics.csv": "step,loss\n1,0.5\n2,0.4\n" });
    // Same size, another time: the modification time alone marks it changed.
    await host.exec(`touch -d '2001-02-03 04:05:06' ${shellQuote(`${remote}/summary.json`)}`);
    const third = await syncResults(host, remote, join(local, "out"));
    expect(third).toMatchObject({ received: ["runs/1/metrics.csv", "summary.json"], skipped: 3 });
    expect(readFileSync(join(local, "out", "runs/1/metrics.csv"), "utf8")).toBe("step,loss\n1,0.5\n2,0.4\n");
    expect(statSync(join(local, "out", "summary.json")).mtime.getUTCFullYear()).toBe(2001);
  });

  it("leaves excluded files remote, and refetches a local copy that was edited", async () => {
    await remoteFiles(remote, files);
    const report = await syncResults(host, remote, local, { exclude: ["*.log", "runs/2/"] });
    expect(report.received).toEqual(["-starts-with-dash.txt", "runs/1/metrics.csv", "summary.json"]);
    writeFileSync(join(local, "summary.json"), "edited here, longer");
    const again = await syncResults(host, remote, local, { exclude: ["*.log", "runs/2/"] });
    expect(again).toMatchObject({ received: ["summary.json"], skipped: 2 });
    expect(readFileSync(join(local, "summary.json"), "utf8")).toBe(files["summary.json"]);
  });

  it("refuses to write through a local symlinked folder, which would lead outside localPath", async () => {
    await remoteFiles(remote, { "runs/1/metrics.csv": "m", "top.txt": "t" });
    const outside = mkdtempSync(join(tmpdir(), "affinetes-test-outside-"));
    try {
      symlinkSync(outside, join(local, "runs"));
      await expect(syncResults(host, remote, local)).rejects.toBeInstanceOf(InfrastructureError);
      expect(readdirSync(outside)).toEqual([]);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it("expands ~/ in the remote path", async () => {
    const name = `affinetes-test-deploy-${randomBytes(6).toString("hex")}`;
    const home = await host.home();
    try {
      await remoteFiles(`${home}/${name}`, { "a/b.txt": "home" });
      const report = await syncResults(host, `~/${name}`, local);
      expect(report.received).toEqual(["a/b.txt"]);
      expect(readFileSync(join(local, "a/b.txt"), "utf8")).toBe("home");
    } finally {
      await host.exec(`rm -rf ${shellQuote(`${home}/${name}`)}`);
    }
  });

  it("answers NotFoundError for a missing remote folder, ValidationError for bad arguments", async () => {
    await expect(syncResults(host, `${remote}/nope`, local)).rejects.toBeInstanceOf(NotFoundError);
    await expect(syncResults(host, "", local)).rejects.toMatchObject({ option: "remotePath" });
    await expect(syncResults(host, remote, "")).rejects.toBeInstanceOf(ValidationError);
  });
});
