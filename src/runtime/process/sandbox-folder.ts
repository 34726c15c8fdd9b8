import { createHash, randomBytes } from "node:crypto";
import { chmod, chown, lstat, mkdir, rm, rmdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { stateDir } from "../../config.js";
import { RuntimeUnavailableError } from "../../errors.js";

/** The unprivileged user (nobody) confined commands run as when the service runs as root. */
export const SANDBOX_USER = { uid: 65534, gid: 65534 } as const;

/** The host folders of one confined sandbox: bound into it, removed with it. */
export interface SandboxFolders {
  /** Holds the others; removed when the instance stops. */
  root: string;
  /** Bound at /workspace, read-write. */
  workdir: string;
  /** Bound at /tmp, read-write. */
  tmp: string;
  /** Bound at /etc/resolv.conf: the user-mode NAT's resolver, or none. */
  resolvConf: string;
}

/**
 * Where confined sandboxes' folders live: `AFFINETES_SANDBOX_DIR`, else — for a service
 * running as root, whose commands run as nobody and must reach their folders — a folder
 * of root's in the system's temporary folder (one per state folder), else `<state>/sandboxes`.
 * Never inside the state folder when commands run as another user: nothing of the state
 * folder has to be opened to them.
 */
export function sandboxArea(): string {
  if (process.env.AFFINETES_SANDBOX_DIR) return process.env.AFFINETES_SANDBOX_DIR;
  if (!runsAsRoot()) return join(stateDir(), "sandboxes");
  const id = createHash("sha256").update(stateDir()).digest("hex").slice(0, 12);
  return join(tmpdir(), `affinetes-sandboxes-${id}`);
}

/** Whether this process is root: its sandboxes' commands then run as `SANDBOX_USER`. */
export function runsAsRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Creates a sandbox's folders: its working folder (with `subfolder` inside, the instance's
 * own working directory) and /tmp, owned by the user its commands run as; `dns` writes the
 * user-mode NAT's resolver into its resolv.conf.
 */
export async function createSandboxFolders(
  name: string,
  subfolder: string,
  dns: boolean,
): Promise<SandboxFolders> {
  const area = sandboxArea();
  const root = join(area, `${name}-${randomBytes(4).toString("hex")}`);
  for (let attempt = 0; ; attempt++) {
    await checkedArea(area);
    try {
      await mkdir(root); // fails when it exists: never someone else's folder
      break;
    } catch (err) {
      // the last sandbox's removal took the empty area away meanwhile: make it again
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || attempt > 2) throw err;
    }
  }
  try {
    await chmod(root, 0o711); // commands (nobody) pass through, list nothing
    const folders: SandboxFolders = {
      root,
      workdir: join(root, "work"),
      tmp: join(root, "tmp"),
      resolvConf: join(root, "resolv.conf"),
    };
    await ownFolder(folders.tmp);
    await ownFolder(folders.workdir);
    let path = folders.workdir;
    for (const part of subfolder.split("/").filter(Boolean)) {
      path = join(path, part);
      await ownFolder(path); // made before any command ran: no link of the sandbox's is followed
    }
    await writeFile(folders.resolvConf, dns ? "nameserver 10.0.2.3\n" : "", { mode: 0o644 });
    await chmod(folders.resolvConf, 0o644);
    return folders;
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}

/** Removes a sandbox's folders (whatever its commands left there), and the area once empty. */
export async function removeSandboxFolders(root: string | undefined): Promise<void> {
  if (!root) return;
  await rm(root, { recursive: true, force: true });
  await rmdir(dirname(root)).catch(() => undefined); // another sandbox's folder is still there
}

async function ownFolder(path: string): Promise<void> {
  await mkdir(path);
  await chmod(path, 0o700);
  if (runsAsRoot()) await chown(path, SANDBOX_USER.uid, SANDBOX_USER.gid);
}

/** The area is made here, or must be ours and writable by no one else (never a folder another user prepared). */
async function checkedArea(area: string): Promise<void> {
  await mkdir(area, { recursive: true, mode: 0o711 });
  const info = await lstat(area);
  const uid = process.getuid?.();
  if (!info.isDirectory() || (uid !== undefined && info.uid !== uid) || (info.mode & 0o022) !== 0) {
    throw new RuntimeUnavailableError(
      "sandbox",
      `${area} (the sandboxes' folder) must be a folder of this user that no one else can write; remove it or set AFFINETES_SANDBOX_DIR`,
    );
  }
  if (runsAsRoot() && (info.mode & 0o011) !== 0o011) await chmod(area, 0o711);
}
