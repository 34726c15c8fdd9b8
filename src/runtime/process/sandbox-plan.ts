import { RuntimeUnavailableError, ValidationError } from "../../errors.js";
import type { InstanceSpec } from "../instance.js";
import type { ResolvedNetworkPolicy } from "../network-policy.js";
import { parseNetworkPolicy, resolveNetworkPolicy } from "../network-policy.js";
import type { NetworkTools } from "../sandbox-network.js";
import { needsOwnNetwork, networkTools } from "../sandbox-network.js";
import { systemTool } from "../system-tool.js";
import type { Isolation, IsolationKind } from "./isolation.js";
import { checkIsolation, configuredImageRoots, isolationBinary } from "./isolation.js";
import { SANDBOX_WORKDIR, sandboxCwd } from "./sandbox-cwd.js";
import { validateSandboxEnv } from "./sandbox-env.js";
import { SANDBOX_USER, runsAsRoot } from "./sandbox-folder.js";

/** A shell sandbox's checked plan: its confinement (folders not made yet), its resolved policy, the network tools. */
export interface SandboxPlan {
  isolation: Omit<Isolation, "folders"> | undefined;
  policy: ResolvedNetworkPolicy;
  /** Present when the sandbox gets its own network namespace. */
  tools: NetworkTools | undefined;
}

/**
 * What a shell sandbox will be, checked before anything is made (a bad request leaves
 * nothing behind): the tool and image, its working directory inside, its variables, its
 * network policy (names resolved now, once) and the tools holding it.
 */
export async function planSandbox(
  spec: InstanceSpec,
  kind: IsolationKind,
  options: { isolationBinary?: string | undefined; imageRoots?: readonly string[] | undefined },
): Promise<SandboxPlan> {
  const network = spec.network === undefined ? "full" : parseNetworkPolicy(spec.network);
  validateSandboxEnv(spec.envVars, "envVars");
  let isolation: SandboxPlan["isolation"];
  if (kind !== "none") {
    const cwd = sandboxCwd(spec.workdir ?? ".", SANDBOX_WORKDIR, "workdir");
    const binary = isolationBinary(kind, options.isolationBinary);
    const image = checkIsolation(kind, spec.image, configuredImageRoots(options.imageRoots));
    const setpriv = runsAsRoot() ? systemTool("setpriv") : undefined;
    if (runsAsRoot() && !setpriv) {
      throw new RuntimeUnavailableError("sandbox", "setpriv is not installed (apt-get install util-linux)");
    }
    const user = runsAsRoot()
      ? { ...SANDBOX_USER }
      : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    isolation = { kind, binary, image, cwd, user, ...(setpriv ? { setpriv } : {}) };
  } else if (spec.workdir?.includes("\0")) {
    throw new ValidationError("workdir", "a path holds no NUL bytes");
  }
  const policy = await resolveNetworkPolicy(network);
  const tools = needsOwnNetwork(kind !== "none", network) ? networkTools(policy, !runsAsRoot()) : undefined;
  return { isolation, policy, tools };
}
