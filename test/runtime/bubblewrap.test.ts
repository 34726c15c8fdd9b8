import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { afterAll, describe, expect, it } from "vitest";
import type { Instance } from "../../src/runtime/instance.js";
import { ProcessRuntime } from "../../src/runtime/process/process-runtime.js";
import { hasDocker, inCi, testBaseImage } from "../helpers/docker.js";

const hasBwrap = spawnSync("bwrap", ["--version"]).status === 0;
if (inCi && !hasBwrap) throw new Error("CI must have bubblewrap (bwrap): .ci/setup-slurm.sh installs it");

const runtime = new ProcessRuntime({ isolation: "bubblewrap" });
const started: Instance[] = [];

/** The host folder of a sandbox's /workspace (its record names it). */
function hostWorkdir(instance: Instance): string {
  const state = JSON.parse(
    readFileSync(join(process.env.AFFINETES_STATE_DIR ?? "", "process", instance.name, "state.json"), "utf8"),
  ) as { isolation: { folders: { workdir: string } } };
  return state.isolation.folders.workdir;
}

async function sandbox(
  overrides: { image?: string; pool?: string; runtime?: ProcessRuntime } = {},
): Promise<Instance> {
  const instance = await (overrides.runtime ?? runtime).start({
    envName: "bwrap-test",
    serve: false,
    ...(overrides.image ? { image: overrides.image } : {}),
    labels: { "affinetes.pool": overrides.pool ?? "bwrap-test" },
  });
  started.push(instance);
  return instance;
}

afterAll(async () => {
  await Promise.all(started.map((i) => i.stop()));
});

describe.skipIf(!hasBwrap)("bubblewrap sandboxes (process runtime, isolation: bubblewrap)", () => {
  it("confines commands: read-only system, private writable working folder and /tmp, own pid namespace", async () => {
    const box = await sandbox();
    expect((await box.exec("pwd")).stdout).toBe("/workspace\n");
    expect(await box.exec("echo kept > note.txt && cat note.txt")).toMatchObject({
      stdout: "kept\n",
      exitCode: 0,
    });
    expect(existsSync(join(hostWorkdir(box), "note.txt"))).toBe(true); // the working folder is the sandbox's own
    const etc = await box.exec("touch /etc/affinetes-escape");
    expect(etc.exitCode).not.toBe(0);
    expect(etc.stderr).toMatch(/Read-only file system/);
    expect(existsSync("/etc/affinetes-escape")).toBe(false);
    const marker = `affinetes-bwrap-${Date.now()}`;
    await box.exec(`echo private > /tmp/${marker}`);
    expect((await box.exec(`cat /tmp/${marker}`)).stdout).toBe("private\n"); // /tmp persists between commands
    expect(existsSync(join("/tmp", marker))).toBe(false); // ... and is not the host's
    // Only the sandbox's own processes are visible: the command's shell is pid 1 or 2.
    const pids = (await box.exec("ls /proc | grep -E '^[0-9]+$' | wc -l")).stdout.trim();
    expect(Number(pids)).toBeLessThan(10);
    const slow = await box.exec("echo partial; sleep 30", { timeoutMs: 300 });
    expect(slow).toMatchObject({ stdout: "partial\n", timedOut: true });
    expect((await box.exec("echo $GREETING", { env: { GREETING: "hi" } })).stdout).toBe("hi\n");
  });

  it("an adopted sandbox (another client, a restarted service) stays confined", async () => {
    const box = await sandbox({ pool: "bwrap-adopt" });
    const [adopted] = await new ProcessRuntime().find("bwrap-adopt"); // even through a plain runtime
    expect(adopted?.id).toBe(box.id);
    expect((await adopted!.exec("touch /etc/affinetes-escape")).exitCode).not.toBe(0);
    await box.stop();
    expect(await adopted!.isRunning()).toBe(false);
  });

  it.skipIf(!hasDocker)("runs on an image's root folder given as image", async () => {
    const root = mkdtempSync(join(tmpdir(), "affinetes-rootfs-"));
    chmodSync(root, 0o755); // commands run as an unprivileged user, who must read it
    const docker = new Docker();
    const container = await docker.createContainer({ Image: testBaseImage });
    try {
      // the tar CLI: an image's root holds absolute symlinks (/dev/fd), which tar-fs refuses
      const untar = spawn("tar", ["-x", "-C", root], { stdio: ["pipe", "ignore", "inherit"] });
      (await container.export()).pipe(untar.stdin);
      const [code] = (await once(untar, "exit")) as [number];
      expect(code).toBe(0);
    } finally {
      await container.remove();
    }
    try {
      writeFileSync(join(root, "affinetes-root-marker"), "image root\n");
      // an image root is one the operator allowed (any folder would be bound whole)
      await expect(sandbox({ image: root })).rejects.toMatchObject({ code: "VALIDATION" });
      const box = await sandbox({
        image: root,
        runtime: new ProcessRuntime({ isolation: "bubblewrap", imageRoots: [tmpdir()] }),
      });
      expect((await box.exec("cat /affinetes-root-marker && python3 -c 'print(6*7)'")).stdout).toBe(
        "image root\n42\n",
      );
      await box.stop();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("refuses a missing bwrap or a root that is not a folder, leaving nothing behind", async () => {
    const before = readdirSync(join(process.env.AFFINETES_STATE_DIR ?? "", "process")).length;
    const missing = new ProcessRuntime({ isolation: "bubblewrap", isolationBinary: "/nonexistent/bwrap" });
    await expect(missing.start({ envName: "x", serve: false })).rejects.toMatchObject({
      code: "RUNTIME_UNAVAILABLE",
      message: expect.stringMatching(/apt-get install bubblewrap/),
    });
    await expect(runtime.start({ envName: "x", serve: false, image: "/etc/hostname" })).rejects.toMatchObject(
      {
        code: "VALIDATION",
      },
    );
    expect(readdirSync(join(process.env.AFFINETES_STATE_DIR ?? "", "process")).length).toBe(before);
  });

  it("does not run method servers", async () => {
    await expect(runtime.start({ envName: "x", envPath: "examples/calculator" })).rejects.toMatchObject({
      code: "UNSUPPORTED",
    });
  });
});
