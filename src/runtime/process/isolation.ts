import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { RuntimeUnavailableError, ValidationError } from "../../errors.js";

/** How a shell sandbox of the process runtime confines its commands. */
export type IsolationKind = "none" | "bubblewrap" | "apptainer" | "singularity" | "enroot";

/** A confined sandbox's setup; recorded, so an adopted sandbox stays confined. */
export interface Isolation {
  kind: Exclude<IsolationKind, "none">;
  /** The tool's binary. */
  binary: string;
  /**
   * What the commands run on: for bubblewrap a root folder (`/`, the host's, by default);
   * for apptainer/singularity a SIF file, sandbox folder or `docker://` URI; for enroot
   * a squashfs image file or the name of a container made by `enroot create`.
   */
  image: string;
  /** The sandbox's private, writable folders: its working folder and its `/tmp`. */
  workdir: string;
  tmp: string;
}

interface Tool {
  binary: string;
  install: string;
}

const TOOLS: Record<Isolation["kind"], Tool> = {
  bubblewrap: { binary: "bwrap", install: "apt-get install bubblewrap" },
  apptainer: { binary: "apptainer", install: "https://apptainer.org/docs/admin/main/installation.html" },
  singularity: {
    binary: "singularity",
    install: "https://docs.sylabs.io/guides/latest/admin-guide/installation.html",
  },
  enroot: { binary: "enroot", install: "https://github.com/NVIDIA/enroot/blob/master/doc/installation.md" },
};

/** The binary of `kind` unless one is given. */
export function isolationBinary(kind: Isolation["kind"], given?: string): string {
  return given ?? TOOLS[kind].binary;
}

/**
 * Checks, before anything is created, that the tool runs and the image fits it: a
 * missing tool or a wrong image is the caller's error, not a half-started sandbox.
 */
export function checkIsolation(kind: Isolation["kind"], binary: string, image: string | undefined): string {
  const missing = isolationMissing(kind, binary);
  if (missing) throw new RuntimeUnavailableError(kind, missing);
  if (kind === "bubblewrap") {
    const root = image ?? "/";
    if (!isFolder(root)) {
      throw new ValidationError(
        "image",
        `a bubblewrap sandbox's image is a root file-system folder (e.g. an unpacked image); ${root} is not a folder`,
      );
    }
    return root;
  }
  if (!image) throw new ValidationError("image", `a ${kind} sandbox needs an image`);
  return image;
}

/** Why the tool of `kind` cannot run here (with how to install it), or undefined when it runs. */
export function isolationMissing(kind: Isolation["kind"], binary = TOOLS[kind].binary): string | undefined {
  const probe = spawnSync(binary, ["--version"], { encoding: "utf8" });
  if (!probe.error && probe.status === 0) return undefined;
  const why = probe.error ? "it is not installed" : probe.stderr.trim() || `exit ${probe.status}`;
  return `${binary} does not run (${why}); install it: ${TOOLS[kind].install}`;
}

/** The command line one command runs under, confined; `sh -c COMMAND` follows it. */
export function isolationArgs(isolation: Isolation, cwd: string): string[] {
  const { binary, image, workdir, tmp } = isolation;
  switch (isolation.kind) {
    case "bubblewrap":
      // The system read-only, only the working folder and a private /tmp writable, its
      // own pid/ipc/uts namespaces; the network is shared (builds and installs need it).
      return [
        binary,
        ...["--ro-bind", image, "/", "--dev", "/dev", "--proc", "/proc"],
        ...["--bind", tmp, "/tmp", "--bind", workdir, workdir],
        ...["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent"],
        ...["--chdir", cwd],
      ];
    case "apptainer":
    case "singularity":
      // `exec --contain`: a minimal /dev and no host home or /tmp; ours are bound in.
      return [binary, "exec", "--contain", "--bind", `${tmp}:/tmp`, "--bind", workdir, "--pwd", cwd, image];
    case "enroot":
      // enroot has no working-folder flag: env(1) changes to it inside.
      return [
        binary,
        ...["start", "--rw", "--mount", `${tmp}:/tmp`, "--mount", `${workdir}:${workdir}`],
        ...[image, "env", `--chdir=${cwd}`],
      ];
  }
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
