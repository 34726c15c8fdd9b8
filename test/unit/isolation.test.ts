import { describe, expect, it } from "vitest";
import { ProcessRuntime } from "../../src/runtime/process/process-runtime.js";
import type { Isolation } from "../../src/runtime/process/isolation.js";
import { isolationArgs } from "../../src/runtime/process/isolation.js";
import { confinedLauncher } from "../../src/runtime/process/sandbox-launcher.js";
import { sandboxCwd } from "../../src/runtime/process/sandbox-cwd.js";

const folders = { root: "/s", workdir: "/s/work", tmp: "/s/tmp", resolvConf: "/s/resolv.conf" };
const base = { folders, cwd: "/workspace", user: { uid: 65534, gid: 65534 } };
const vars = [
  ["PATH", "/evil"],
  ["LD_PRELOAD", "/workspace/x.so"],
] as const;

describe("sandbox isolation command lines (the tools' documented interfaces)", () => {
  it("apptainer and singularity: exec --containall, folders bound in, variables through --env", () => {
    for (const kind of ["apptainer", "singularity"] as const) {
      const isolation: Isolation = { kind, binary: `/usr/bin/${kind}`, image: "/img/py.sif", ...base };
      expect(isolationArgs(isolation, "/workspace/sub", [...vars, ["A", "1,2"]])).toEqual([
        `/usr/bin/${kind}`,
        "exec",
        "--containall",
        "--no-mount",
        "home,cwd,bind-paths",
        "--bind",
        "/s/tmp:/tmp",
        "--bind",
        "/s/work:/workspace",
        "--bind",
        "/s/resolv.conf:/etc/resolv.conf:ro",
        "--env",
        "PATH=/evil",
        "--env",
        "LD_PRELOAD=/workspace/x.so",
        "--env",
        '"A=1,2"',
        "--pwd",
        "/workspace/sub",
        "/img/py.sif",
      ]);
    }
  });

  it("enroot: start with the folders mounted, read-only root, variables through --env", () => {
    const isolation: Isolation = { kind: "enroot", binary: "/usr/bin/enroot", image: "py.sqsh", ...base };
    expect(isolationArgs(isolation, "/workspace", vars)).toEqual([
      "/usr/bin/enroot",
      "start",
      "--mount",
      "/s/tmp:/tmp",
      "--mount",
      "/s/work:/workspace",
      "--env",
      "PATH=/evil",
      "--env",
      "LD_PRELOAD=/workspace/x.so",
      "py.sqsh",
      "env",
      "--chdir=/workspace",
    ]);
  });

  it("bubblewrap: whitelisted read-only root, own user namespace without capabilities, variables inside only", () => {
    const isolation: Isolation = { kind: "bubblewrap", binary: "/usr/bin/bwrap", image: "/", ...base };
    const args = isolationArgs(isolation, "/workspace", vars);
    expect(args.slice(0, 8)).toEqual([
      "/usr/bin/bwrap",
      "--unshare-user",
      "--uid",
      "65534",
      "--gid",
      "65534",
      "--cap-drop",
      "ALL",
    ]);
    expect(args).toContain("--unshare-pid");
    expect(args.join(" ")).not.toMatch(/--ro-bind \/ \/|\/root|\/home|\/var/);
    expect(args.join(" ")).toContain("--bind /s/work /workspace");
    expect(args.join(" ")).toContain("--clearenv --setenv PATH /evil --setenv LD_PRELOAD /workspace/x.so");
    expect(args.slice(-2)).toEqual(["--chdir", "/workspace"]);
  });

  it("the launcher enters the network namespace, then drops to the sandbox's user, every program at an absolute path", () => {
    const isolation: Isolation = {
      kind: "bubblewrap",
      binary: "/usr/bin/bwrap",
      image: "/",
      ...base,
      setpriv: "/usr/bin/setpriv",
    };
    const network = { policy: "none" as const, pid: 42, rootless: false, nsenter: "/usr/bin/nsenter" };
    const args = confinedLauncher(isolation, network, "/workspace", []);
    expect(args.slice(0, 9)).toEqual([
      "/usr/bin/nsenter",
      "--net=/proc/42/ns/net",
      "--",
      "/usr/bin/setpriv",
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      "--nnp",
      "--",
    ]);
    expect(args[9]).toBe("/usr/bin/bwrap");
  });

  it("working directories stay inside the sandbox's own folder", () => {
    expect(sandboxCwd("repo", "/workspace", "cwd")).toBe("/workspace/repo");
    expect(sandboxCwd("/workspace/a/../b/", "/workspace", "cwd")).toBe("/workspace/b");
    expect(sandboxCwd(".", "/workspace/sub", "cwd")).toBe("/workspace/sub");
    for (const bad of ["/", "/etc", "..", "../..", "/workspace/../root", "/workspaces", "a\0b"]) {
      expect(() => sandboxCwd(bad, "/workspace", "cwd")).toThrow(/Invalid option "cwd"/);
    }
  });

  // apptainer, singularity and enroot are not installable on this machine (not in Debian 12):
  // what runs here is the refusal, with the way to install them.
  it.each(["apptainer", "singularity", "enroot"] as const)(
    "%s missing: a clear RuntimeUnavailableError naming how to install it",
    async (kind) => {
      const runtime = new ProcessRuntime({ isolation: kind, isolationBinary: `/nonexistent/${kind}` });
      await expect(runtime.start({ envName: "x", serve: false, image: "img" })).rejects.toMatchObject({
        code: "RUNTIME_UNAVAILABLE",
        message: expect.stringMatching(/not installed.*install it: https:\/\//),
      });
    },
  );
});
