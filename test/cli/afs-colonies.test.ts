import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Colonies, newIdentity } from "../../src/index.js";
import { afs } from "../helpers/afs.js";
import { killAndWait } from "../helpers/client-process.js";
import type { Service } from "../helpers/service.js";
import { serve } from "../helpers/service.js";

describe("afs colonies (the process queue from the command line)", () => {
  let service: Service | undefined;
  const keygen = async () =>
    JSON.parse((await afs(["colonies", "keygen", "--json"])).stdout) as { privateKey: string; id: string };

  afterAll(async () => {
    if (service) await killAndWait(service.child, "SIGTERM");
  });

  it("keygen, add a colony and an executor, submit, list, run and read back a workflow", async () => {
    const server = await keygen();
    const colony = await keygen();
    const worker = await keygen();
    expect(server.privateKey).toMatch(/^[0-9a-f]{64}$/);
    expect((await afs(["colonies", "id", server.privateKey])).stdout.trim()).toBe(server.id);
    service = await serve("--colonies-server-id", server.id);
    const env = { COLONIES_COLONY_NAME: "cli", AFFINETES_UNUSED: "" };
    const at = ["--server", service.url];
    const url = service.url;
    const added = await afs([
      "colonies",
      "add-colony",
      ...at,
      "--prvkey",
      server.privateKey,
      "--name",
      "cli",
      "--colony-id",
      colony.id,
    ]);
    expect(added.code, added.stderr).toBe(0);
    const executor = await afs(
      [
        "colonies",
        "add-executor",
        ...at,
        "--prvkey",
        colony.privateKey,
        "--name",
        "w1",
        "--type",
        "cli",
        "--executor-id",
        worker.id,
      ],
      { env },
    );
    expect(executor.stdout).toContain("executor w1 added and approved");
    expect(
      (await afs(["colonies", "executors", ...at, "--prvkey", colony.privateKey], { env })).stdout,
    ).toMatch(/w1\s+cli\s+approved/);
    const submitted = await afs(
      [
        "colonies",
        "submit",
        ...at,
        "--prvkey",
        colony.privateKey,
        "--func",
        "add",
        "--type",
        "cli",
        "--arg",
        "2",
        "--arg",
        "3",
      ],
      { env },
    );
    expect(submitted.code, submitted.stderr).toBe(0);
    const processid = submitted.stdout.trim();
    expect((await afs(["colonies", "ps", ...at, "--prvkey", colony.privateKey], { env })).stdout).toMatch(
      new RegExp(`${processid.slice(0, 12)}\\s+add\\s+cli\\s+waiting`),
    );
    const colonies = new Colonies(url);
    try {
      const p = await colonies.assign("cli", 5, worker.privateKey);
      expect(p?.spec.args).toEqual([2, 3]);
      await colonies.close(p!.processid, [5], worker.privateKey);
    } finally {
      await colonies.disconnect();
    }
    const got = JSON.parse(
      (await afs(["colonies", "get", ...at, "--prvkey", colony.privateKey, processid, "--json"], { env }))
        .stdout,
    );
    expect(got).toMatchObject({ state: 2, out: [5] });
    const file = join(mkdtempSync(join(tmpdir(), "affinetes-wf-")), "wf.json");
    writeFileSync(
      file,
      JSON.stringify([
        { nodename: "a", funcname: "a", conditions: { executortype: "cli" } },
        { nodename: "b", funcname: "b", conditions: { executortype: "cli", dependencies: ["a"] } },
      ]),
    );
    const workflow = await afs(
      ["colonies", "workflow", ...at, "--prvkey", colony.privateKey, file, "--json"],
      { env },
    );
    expect(workflow.code, workflow.stderr).toBe(0);
    expect(JSON.parse(workflow.stdout).processids).toHaveLength(2);
    const graphid = JSON.parse(workflow.stdout).processgraphid as string;
    const key = ["--prvkey", colony.privateKey];
    const cancelled = await afs(["colonies", "cancel", ...at, ...key, "--workflow", graphid], { env });
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect((await afs(["colonies", "ps", ...at, ...key, "--state", "cancelled"], { env })).stdout).toMatch(
      /\sa\s+cli\s+cancelled/,
    );
    expect((await afs(["colonies", "rm", ...at, ...key, "--workflow", graphid], { env })).code).toBe(0);
    expect((await afs(["colonies", "rm", ...at, ...key, processid], { env })).code).toBe(0);
    const gone = await afs(["colonies", "get", ...at, ...key, processid], { env });
    expect(gone.code).not.toBe(0);
  });

  it("refuses bad flags with usage errors (exit 2)", async () => {
    const noKey = await afs(["colonies", "ps", "--colony", "x"], { env: { COLONIES_PRVKEY: "" } });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/--prvkey/);
    const badState = await afs([
      "colonies",
      "ps",
      "--colony",
      "x",
      "--prvkey",
      newIdentity().privateKey,
      "--state",
      "sleeping",
    ]);
    expect(badState.code).toBe(2);
    const key = newIdentity().privateKey;
    for (const bad of [
      ["--priority", "abc"],
      ["--priority", "1e9"],
      ["--max-retries", "1.5"],
      ["--max-exec-time", "1000000000000000"],
    ]) {
      const submit = await afs([
        "colonies",
        "submit",
        "--colony",
        "x",
        "--prvkey",
        key,
        "--func",
        "f",
        "--type",
        "t",
        ...bad,
      ]);
      expect(submit.code, `${bad.join(" ")}: ${submit.stderr}`).toBe(2);
      expect(submit.stderr).toContain(bad[0]);
    }
  });
});
