import { describe, expect, it } from "vitest";
import { ProcessRuntime } from "../../src/runtime/process/process-runtime.js";
import { isolationArgs } from "../../src/runtime/process/isolation.js";

const folders = { workdir: "/s/work", tmp: "/s/tmp" };

describe("sandbox isolation command lines (the tools' documented interfaces)", () => {
  it("apptainer and singularity: exec --contain with the working folder and a private /tmp bound in", () => {
    for (const kind of ["apptainer", "singularity"] as const) {
      expect(isolationArgs({ kind, binary: kind, image: "/img/py.sif", ...folders }, "/s/work/sub")).toEqual([
        kind,
        "exec",
        "--contain",
        "--bind",
        "/s/tmp:/tmp",
        "--bind",
        "/s/work",
        "--pwd",
        "/s/work/sub",
        "/img/py.sif",
      ]);
    }
  });

  it("enroot: start --rw with the folders mounted, changing to the working folder inside", () => {
    expect(
      isolationArgs({ kind: "enroot", binary: "enroot", image: "py.sqsh", ...folders }, "/s/work"),
    ).toEqual([
      "enroot",
      "start",
      "--rw",
      "--mount",
      "/s/tmp:/tmp",
      "--mount",
      "/s/work:/s/work",
      "py.sqsh",
      "env",
      "--chdir=/s/work",
    ]);
  });

  it("bubblewrap: read-only root, the folders writable, own namespaces", () => {
    const args = isolationArgs({ kind: "bubblewrap", binary: "bwrap", image: "/", ...folders }, "/s/work");
    expect(args.slice(0, 4)).toEqual(["bwrap", "--ro-bind", "/", "/"]);
    expect(args).toContain("--unshare-pid");
    expect(args.slice(-2)).toEqual(["--chdir", "/s/work"]);
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
