import type { SandboxNetwork } from "../sandbox-network.js";
import { enterNetworkArgs } from "../sandbox-network.js";
import type { Isolation } from "./isolation.js";
import { isolationArgs } from "./isolation.js";

/**
 * The command line one confined command runs under, every program at an absolute path:
 * into the sandbox's network namespace (as the service), then — a root service — as the
 * sandbox's unprivileged user with no way to gain privileges, then the isolation tool,
 * which applies `vars` inside only. `sh -c COMMAND` follows it.
 */
export function confinedLauncher(
  isolation: Isolation,
  network: SandboxNetwork | undefined,
  cwd: string,
  vars: ReadonlyArray<readonly [string, string]>,
): string[] {
  const { uid, gid } = isolation.user;
  // apptainer's and singularity's setuid installations need to gain privileges: no --nnp there
  const nnp = isolation.kind === "bubblewrap" || isolation.kind === "enroot" ? ["--nnp"] : [];
  return [
    ...(network ? enterNetworkArgs(network) : []),
    ...(isolation.setpriv
      ? [isolation.setpriv, `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", ...nnp, "--"]
      : []),
    ...isolationArgs(isolation, cwd, vars),
  ];
}
