/**
 * Deploy over SSH in a few lines: push a project, prepare a venv, run a command, start a
 * detached job, bring its results back, and run on several hosts with RANK set.
 *
 *   AFFINETES_DEPLOY_HOST=root@127.0.0.2:2222 npx tsx examples/deploy.ts
 *
 * AFFINETES_DEPLOY_ROOT moves the host's workspaces and jobs (default ~/.affinetes).
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Host,
  deployAndRun,
  deployProject,
  runInProject,
  runOnHosts,
  startJob,
  syncResults,
} from "affinetes/deploy";

const root = process.env.AFFINETES_DEPLOY_ROOT ?? "~/.affinetes";
const host = await Host.connect(process.env.AFFINETES_DEPLOY_HOST ?? "root@127.0.0.2:2222");
try {
  const localPath = join(import.meta.dirname, "calculator");
  const first = await deployAndRun(host, { localPath, root, backend: "none", command: "ls" });
  console.log(`files there: ${first.stdout.trim()} (${first.workspace.push.sent.length} sent)`);

  const ws = await deployProject(host, { localPath, root, backend: "venv" });
  const r = await runInProject(
    host,
    ws,
    "python -c \"import sys, os; print(sys.prefix == os.environ['VIRTUAL_ENV'], os.environ['SEED'])\"",
    {
      env: { SEED: "1" },
    },
  );
  console.log(`in the venv: ${r.stdout.trim()} (exit ${r.exitCode})`);

  const job = await startJob(host, {
    name: "training",
    root,
    workspace: ws,
    command: "mkdir -p results && python -c 'print(6 * 7)' > results/answer.txt",
  });
  const info = await job.wait({ timeoutMs: 60_000 });
  const local = mkdtempSync(join(tmpdir(), "affinetes-example-results-"));
  const synced = await syncResults(host, `${ws}/results`, local);
  console.log(
    `job ${info.state} (${info.exitCode}); results: ${synced.received.join(", ")} = ${readFileSync(join(local, "answer.txt"), "utf8").trim()}`,
  );

  const ranks = await runOnHosts([host], { command: "echo rank $RANK of $WORLD_SIZE, master $MASTER_ADDR" });
  console.log(ranks.map((x) => x.stdout.trim()).join("; "));
} finally {
  host.close();
}
