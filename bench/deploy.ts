/**
 * Pushing a project to an SSH host: a 5,000-file tree (plain files in nested folders,
 * ~20 MB), pushed by `pushProject` first and again after one file changed, against
 * `rsync -a` over ssh, `scp -r` and a raw `tar | ssh tar -x` pipe of the same tree to the
 * same host in the same run.
 * Medians of BENCH_DEPLOY_RUNS runs (default 3) each; each first push starts from an
 * empty destination.
 *
 *   npm run bench:deploy        (needs the SSH host of .ci/setup-ssh-hosts.sh, rsync)
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { Host, pushProject } from "../src/deploy/index.js";
import { writeSection } from "./results-file.js";
import { median, timed } from "./stats.js";

const FILES = Number(process.env.BENCH_DEPLOY_FILES ?? 5000);
const RUNS = Number(process.env.BENCH_DEPLOY_RUNS ?? 3);
const HOST = process.env.BENCH_DEPLOY_HOST ?? "root@127.0.0.2:2222";
const [user, address, port] = /^(.+)@(.+):(\d+)$/.exec(HOST)?.slice(1) ?? [];
const remoteRoot = `/tmp/affinetes-bench-deploy-${process.pid}`;
const ssh = ["-p", port ?? "22", "-o", "BatchMode=yes"];

/** A tree of FILES files, 100 per folder, sizes 1-8 KB (a source tree's shape). */
function makeTree(): string {
  const dir = mkdtempSync(join(tmpdir(), "affinetes-bench-tree-"));
  for (let i = 0; i < FILES; i++) {
    const folder = join(dir, `pkg${Math.floor(i / 100)}`, `mod${Math.floor(i / 25) % 4}`);
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, `file${i}.txt`), `${i}:`.padEnd(1024 * (1 + (i % 8)), "x"));
  }
  return dir;
}

function sh(command: string, args: string[]): void {
  execFileSync(command, args, { stdio: ["ignore", "ignore", "inherit"] });
}

/** The whole tree through one tar stream over ssh: the floor of any full copy. */
function tarPipe(): string {
  const dest = `${remoteRoot}/tar`;
  return `tar -C ${tree} -cf - . | ssh ${ssh.join(" ")} ${user}@${address} 'mkdir -p ${dest} && tar -x -m -f - -C ${dest}'`;
}

/** A copy made by running the same command, first and after the change. */
function twice(copy: () => void): { first: () => Promise<void>; again: () => Promise<void> } {
  return { first: async () => copy(), again: async () => copy() };
}

function remote(command: string): void {
  sh("ssh", [...ssh, `${user}@${address}`, command]);
}

const tree = makeTree();
const host = await Host.connect(HOST);
const rows: string[] = [];
const results: Record<string, { first: number; incremental: number }> = {};
try {
  const changeOne = (run: number) =>
    writeFileSync(join(tree, "pkg0", "mod0", "file0.txt"), `changed ${run}\n`);
  const tools: Record<string, { first: () => Promise<void>; again: () => Promise<void> }> = {
    "affinetes pushProject": {
      first: async () => {
        await pushProject(host, { localPath: tree, project: "tree", root: `${remoteRoot}/ours` });
      },
      again: async () => {
        const r = await pushProject(host, { localPath: tree, project: "tree", root: `${remoteRoot}/ours` });
        if (r.sent.length !== 1) throw new Error(`incremental push sent ${r.sent.length} files`);
      },
    },
    // none of these has a notion of "changed" but rsync: the same command again
    "rsync -a over ssh": twice(() =>
      sh("rsync", [
        "-a",
        "-e",
        `ssh ${ssh.join(" ")}`,
        `${tree}/`,
        `${user}@${address}:${remoteRoot}/rsync/`,
      ]),
    ),
    "tar -c | ssh tar -x (the raw pipe)": twice(() => sh("sh", ["-c", tarPipe()])),
    "scp -r": twice(() =>
      sh("scp", [
        "-q",
        "-r",
        "-P",
        port ?? "22",
        "-o",
        "BatchMode=yes",
        tree,
        `${user}@${address}:${remoteRoot}/scp`,
      ]),
    ),
  };
  for (const [name, tool] of Object.entries(tools)) {
    const first: number[] = [];
    const again: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      remote(`rm -rf ${remoteRoot} && mkdir -p ${remoteRoot}`);
      first.push(await timed(tool.first));
      changeOne(run);
      again.push(await timed(tool.again));
    }
    results[name] = { first: median(first), incremental: median(again) };
    console.log(
      `${name}: first ${median(first).toFixed(0)} ms, after one change ${median(again).toFixed(0)} ms`,
    );
  }
  const ours = results["affinetes pushProject"] as { first: number; incremental: number };
  for (const [name, r] of Object.entries(results)) {
    rows.push(
      `| ${name.replaceAll("|", "\\|")} | ${r.first.toFixed(0)} | ${(r.first / ours.first).toFixed(2)}x | ${r.incremental.toFixed(0)} | ${(r.incremental / ours.incremental).toFixed(2)}x |`,
    );
  }
} finally {
  remote(`rm -rf ${remoteRoot}`);
  host.close();
  rmSync(tree, { recursive: true, force: true });
}

writeSection(
  "deploy",
  `## Pushing a project over SSH

Written by \`npm run bench:deploy\` (bench/deploy.ts) on ${new Date().toISOString().slice(0, 10)}:
${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}.
A tree of ${FILES} files (1-8 KB each, 100 per folder) to ${HOST} (sshd on this machine), median of
${RUNS} runs; "after one change" pushes the tree again with one file modified. Times in ms; the
ratio is the tool's time over ours (above 1: we are faster).

| tool | first push (ms) | vs ours | after one change (ms) | vs ours |
| --- | --- | --- | --- | --- |
${rows.join("\n")}
`,
);
console.log("\nwritten to bench/RESULTS.md");
