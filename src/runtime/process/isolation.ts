import { spawnSync } from "node:child_process";
import { realpathSync, statSync } from "node:fs";
import { delimiter, isAbsolute, sep } from "node:path";
import { RuntimeUnavailableError, ValidationError } from "../../errors.js";
import { bubblewrapOwnArgs, bubblewrapRootArgs } from "./bubblewrap-root.js";
import type { SandboxFolders } from "./sandbox-folder.js";
import { SANDBOX_WORKDIR } from "./sandbox-cwd.js";
import { LAUNCHER_PATH, systemTool } from "../system-tool.js";

/** How a shell sandbox of the process runtime confines its commands. */
export type IsolationKind = "none" | "bubblewrap" | "apptainer" | "singularity" | "enroot";

/** A confined sandbox's setup; recorded, so an adopted sandbox stays confined. */
export interface Isolation {
  kind: Exclude<IsolationKind, "none">;
  /** The tool's binary, an absolute path. */
  binary: string;
  /**
   * What the commands run on: for bubblewrap a root folder (`/`, the host's system
   * folders only, by default); for apptainer/singularity a SIF file, sandbox folder or
   * `docker://` URI; for enroot a squashfs image file or the name of a container made
   * by `enroot create`.
   */
  image: string;
  /** Its host folders: the working folder (at /workspace inside), /tmp, resolv.conf. */
  folders: SandboxFolders;
  /** The working directory of its commands, inside (under /workspace). */
  cwd: string;
  /** The user its commands run as. */
  user: { uid: number; gid: number };
  /** `setpriv`'s path when the service runs as root: commands switch to `user` before the tool runs. */
  setpriv?: string;
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

/** The variable naming the folders (`:`-separated) whose subfolders may be bubblewrap image roots. */
export const IMAGE_ROOTS_VARIABLE = "AFFINETES_BUBBLEWRAP_IMAGE_ROOTS";

/** The image roots allowed by `IMAGE_ROOTS_VARIABLE`, unless given. */
export function configuredImageRoots(given?: readonly string[]): readonly string[] {
  return given ?? (process.env[IMAGE_ROOTS_VARIABLE] ?? "").split(delimiter).filter(Boolean);
}

/** The absolute path of `kind`'s binary (`given`, or its usual name); throws when it does not run. */
export function isolationBinary(kind: Isolation["kind"], given?: string): string {
  const missing = isolationMissing(kind, given);
  if (missing) throw new RuntimeUnavailableError(kind, missing);
  return systemTool(given ?? TOOLS[kind].binary) as string;
}

/**
 * Checks, before anything is created, that the image fits the tool and is one a request
 * may name: a wrong image is the caller's error, not a half-started sandbox. A folder
 * (bubblewrap's root, apptainer's sandbox folder) is the host's root — seen through the
 * system whitelist — or lies under one of `imageRoots`, the operator's choice: any other
 * folder (`/root`, the service's state) would be bound into the sandbox whole.
 */
export function checkIsolation(
  kind: Isolation["kind"],
  image: string | undefined,
  imageRoots: readonly string[],
): string {
  if (kind === "bubblewrap") {
    const root = image ?? "/";
    if (root.includes("\0") || !isFolder(root)) {
      throw new ValidationError(
        "image",
        `a bubblewrap sandbox's image is a root file-system folder (e.g. an unpacked image); ${root} is not a folder`,
      );
    }
    return realpathSync(root) === "/" ? "/" : allowedFolder(root, imageRoots);
  }
  if (!image) throw new ValidationError("image", `a ${kind} sandbox needs an image`);
  if (image.includes("\0") || image.startsWith("-")) throw new ValidationError("image", "not an image name");
  if ((kind === "apptainer" || kind === "singularity") && isFolder(image))
    return allowedFolder(image, imageRoots);
  return image;
}

/** Why the tool of `kind` cannot run here (with how to install it), or undefined when it runs. */
export function isolationMissing(kind: Isolation["kind"], binary = TOOLS[kind].binary): string | undefined {
  const path = systemTool(binary);
  if (!path) return `${binary} does not run (it is not installed); install it: ${TOOLS[kind].install}`;
  const probe = spawnSync(path, ["--version"], { encoding: "utf8", env: { PATH: LAUNCHER_PATH } });
  if (!probe.error && probe.status === 0) return undefined;
  const why = probe.error ? probe.error.message : probe.stderr.trim() || `exit ${probe.status}`;
  return `${binary} does not run (${why}); install it: ${TOOLS[kind].install}`;
}

/**
 * The tool's command line for one command, confined; `sh -c COMMAND` follows it. `vars`
 * go in through the tool's own flag, so they apply inside only.
 */
export function isolationArgs(
  isolation: Isolation,
  cwd: string,
  vars: ReadonlyArray<readonly [string, string]>,
): string[] {
  const { binary, image, folders } = isolation;
  const { workdir, tmp, resolvConf } = folders;
  switch (isolation.kind) {
    case "bubblewrap": {
      const { uid, gid } = isolation.user;
      // Its own user namespace holding no capability (CAP_NET_ADMIN would undo the network
      // policy), its own pid/ipc/uts namespaces, the root built from the whitelist.
      return [
        binary,
        ...["--unshare-user", "--uid", String(uid), "--gid", String(gid), "--cap-drop", "ALL"],
        ...["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent"],
        ...bubblewrapRootArgs(image, resolvConf),
        ...bubblewrapOwnArgs(workdir, tmp),
        "--clearenv",
        ...vars.flatMap(([name, value]) => ["--setenv", name, value]),
        ...["--chdir", cwd],
      ];
    }
    case "apptainer":
    case "singularity":
      // Not run on this project's CI (not packaged for Debian 12): written against the
      // documented flags. --containall: own pid/ipc, clean environment, no host home or
      // /tmp; --no-mount drops the default binds of the current folder and the admin's paths.
      return [
        binary,
        ...["exec", "--containall", "--no-mount", "home,cwd,bind-paths"],
        ...["--bind", `${tmp}:/tmp`, "--bind", `${workdir}:${SANDBOX_WORKDIR}`],
        ...["--bind", `${resolvConf}:/etc/resolv.conf:ro`],
        ...vars.flatMap(([name, value]) => ["--env", csvField(`${name}=${value}`)]),
        ...["--pwd", cwd, image],
      ];
    case "enroot":
      // Not run on this project's CI either. The container's root stays read-only (no
      // --rw: it is shared by every sandbox of that container); env(1) changes folder inside.
      return [
        binary,
        ...["start", "--mount", `${tmp}:/tmp`, "--mount", `${workdir}:${SANDBOX_WORKDIR}`],
        ...vars.flatMap(([name, value]) => ["--env", `${name}=${value}`]),
        ...[image, "env", `--chdir=${cwd}`],
      ];
  }
}

/** apptainer reads `--env` as comma-separated pairs: a value with a comma or quote is quoted (CSV). */
function csvField(text: string): string {
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function allowedFolder(folder: string, imageRoots: readonly string[]): string {
  const real = realpathSync(folder);
  const inside = imageRoots.some((root) => {
    const base = isAbsolute(root) && isFolder(root) ? realpathSync(root) : undefined;
    return base !== undefined && real !== base && real.startsWith(base.endsWith(sep) ? base : base + sep);
  });
  if (!inside) {
    throw new ValidationError(
      "image",
      `${folder} is not under a folder allowed for image roots (the operator's ${IMAGE_ROOTS_VARIABLE}); the host's root is "/"`,
    );
  }
  if (process.getuid?.() === 0 && (statSync(real).mode & 0o005) !== 0o005) {
    throw new ValidationError(
      "image",
      `${folder} must be readable by everyone: commands run as an unprivileged user`,
    );
  }
  return real;
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
