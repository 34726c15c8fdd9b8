import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ContainerHandle } from "../../src/index.js";
import { shellQuote } from "../../src/util/shell-quote.js";
import { hasDocker, testBaseImage } from "../helpers/docker.js";
import type { ControlService } from "../helpers/control-service.js";
import { serveControl } from "../helpers/control-service.js";
import { until } from "../helpers/until.js";

const ITERATIONS = 2_000;

/**
 * The attack: a principal's container mounts its own disk and, in a tight loop, swaps a
 * folder (`real`) and a file (`g`) for symlinks to a folder on the service's host, while
 * the same principal reads, lists, writes and deletes through the REST API. A server that
 * checks a path and then opens it again follows the symlink in between: it read host
 * files and created files outside the disk. Nothing outside may ever be read, created or
 * removed.
 */
describe.skipIf(!hasDocker)("attack: symlink swaps racing the disk file API", () => {
  let control: ControlService;
  let swapper: ContainerHandle;
  const outside = mkdtempSync(join(tmpdir(), "affinetes-outside-"));
  const canary = `CANARY-${process.pid}-${Date.now()}`;
  const outsideNames = ["f", "g", "secret", "victim", "canary-marker"];

  beforeAll(async () => {
    for (const name of outsideNames) writeFileSync(join(outside, name), canary);
    control = await serveControl();
    const alice = control.clients.alice;
    const disk = await alice.disks.create({ name: "race" });
    await alice.disks.writeFile(disk.id, "real/f", "inside");
    await alice.disks.writeFile(disk.id, "g", "inside");
    // Each step may fail (the API makes `real` again when a write finds it missing): the
    // loop goes on whatever happens, with a short pause so the service gets CPU too.
    const script = [
      "import os, shutil, time",
      "os.chdir('/mnt/disk')",
      `out = ${JSON.stringify(outside)}`,
      "def step(f):",
      "    try: f()",
      "    except OSError: pass",
      "def clear(name):",
      "    if os.path.islink(name) or os.path.isfile(name): os.unlink(name)",
      "    elif os.path.isdir(name): shutil.rmtree(name)",
      "def swap_in(name, target):",
      "    step(lambda: os.rename(name, name + '.hold')); step(lambda: os.symlink(target, name))",
      "def swap_back(name):",
      "    if os.path.lexists(name + '.hold'):",
      "        step(lambda: clear(name)); step(lambda: os.rename(name + '.hold', name))",
      "while True:",
      "    swap_in('real', out); swap_in('g', out + '/g')",
      "    time.sleep(0.0005)",
      "    swap_back('real'); swap_back('g')",
      "    time.sleep(0.0005)",
    ].join("\n");
    swapper = await alice.containers.create({
      disk: disk.id,
      image: testBaseImage,
      command: `python3 -c ${shellQuote(script)}`,
    });
    // the swap is on: a listing sees the folder moved aside at some point
    const swapping = await until(async () => {
      const names = (await alice.disks.readDirectory(disk.id)).map((e) => e.name);
      return names.includes("real.hold") || names.includes("g.hold");
    }, 20_000);
    expect(swapping, await swapper.logs()).toBe(true);
  });

  afterAll(async () => {
    await swapper?.stop().catch(() => undefined);
    await control?.[Symbol.asyncDispose]();
  });

  it(`reads, lists, writes and deletes ${ITERATIONS} times: nothing outside the disk is read, made or removed`, async () => {
    const alice = control.clients.alice;
    let refused = 0;
    let insideReads = 0;
    const leaks: string[] = [];
    const failures = new Set<string>();
    const refusedOr = async <T>(op: () => Promise<T>): Promise<T | undefined> => {
      try {
        return await op();
      } catch (err) {
        const status = (err as { status?: number; code?: string }).status;
        const code = (err as { code?: string }).code;
        // a 4xx is the server refusing the swapped path; anything else is a failure, counted
        if (status !== undefined ? status >= 500 : code !== "NOT_FOUND")
          failures.add(
            `${status ?? code}: ${(err as Error).message.replace(/disk_\w+/g, "disk_*").slice(0, 120)}`,
          );
        else refused++;
        return undefined;
      }
    };
    for (let i = 0; i < ITERATIONS; i++) {
      const [file, link, listing] = await Promise.all([
        refusedOr(() => alice.disks.readFile("race", "real/f")),
        refusedOr(() => alice.disks.readFile("race", "g")),
        refusedOr(() => alice.disks.readDirectory("race", "real")),
        refusedOr(() => alice.disks.writeFile("race", `real/new-${i}`, "written")),
        refusedOr(() => alice.disks.writeFile("race", `real/sub-${i}/deep`, "written")),
        refusedOr(() => alice.disks.deleteFile("race", "real/victim")),
        refusedOr(() => alice.disks.deleteFile("race", `real/new-${i}`)),
      ]);
      for (const content of [file, link]) {
        if (content?.toString() === "inside") insideReads++;
        else if (content) leaks.push(`read: ${content.toString().slice(0, 60)}`);
      }
      if (listing?.some((e) => e.name === "canary-marker")) leaks.push("listed the outside folder");
    }
    expect(leaks).toEqual([]);
    expect([...failures]).toEqual([]);
    expect(readdirSync(outside).sort()).toEqual([...outsideNames].sort());
    for (const name of outsideNames) expect(readFileSync(join(outside, name), "utf8")).toBe(canary);
    // the race was run, not dodged: requests met both the swapped paths (refused) and the real ones
    expect(refused).toBeGreaterThan(0);
    expect(insideReads).toBeGreaterThan(0);
    expect((await swapper.refresh()).status).toBe("running");
  }, 600_000);
});
