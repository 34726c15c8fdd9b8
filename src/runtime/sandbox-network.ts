import { RuntimeUnavailableError, UnsupportedError } from "../errors.js";
import type { NetworkPolicy, ResolvedNetworkPolicy } from "./network-policy.js";
import { systemTool } from "./system-tool.js";

/**
 * A shell sandbox's own network namespace, made when it starts and held for its life by
 * an idle process in it; every command enters it, so the host's network — its loopback
 * services above all — is never the sandbox's.
 */
export interface SandboxNetwork {
  policy: ResolvedNetworkPolicy["kind"];
  /** The process holding the namespace (`/proc/<pid>/ns/net`), on the sandbox's machine (a Slurm job's node). */
  pid: number;
  /** Its start time (clock ticks since boot), so a reused pid is never entered; unknown on a Slurm node. */
  startTicks?: number;
  /** The service is not root: a user namespace of its own owns the network namespace, and commands enter both. */
  rootless: boolean;
  /** `nsenter`'s absolute path. */
  nsenter: string;
}

/** The host tools that make and hold a sandbox's network, absolute paths. */
export interface NetworkTools {
  unshare: string;
  nsenter: string;
  ip: string;
  /** The user-mode NAT (`full`, allowlists). */
  slirp4netns?: string;
  /** Applies an allowlist's rules inside the namespace. */
  iptablesRestore?: string;
}

/**
 * Whether a shell sandbox gets its own network namespace: always when confined (sharing
 * the host's network is how a sandbox reached the key-less loopback service); otherwise
 * (a plain shell on the host, which can leave any namespace) only to hold a policy other
 * than `full` for code that does not try to escape.
 */
export function needsOwnNetwork(confined: boolean, policy: NetworkPolicy | undefined): boolean {
  return confined || (policy !== undefined && policy !== "full");
}

/**
 * The tools `policy` needs here, checked before anything starts. As root, every policy is
 * held (slirp4netns for outbound traffic, iptables for an allowlist). A non-root service
 * holds `none` in a user namespace of its own; outbound traffic would need slirp4netns to
 * open /dev/net/tun and iptables to run inside that user namespace, which this project
 * does not test: it is refused, naming what to change.
 */
export function networkTools(policy: ResolvedNetworkPolicy, rootless: boolean): NetworkTools {
  if (rootless && policy.kind !== "none") {
    throw new UnsupportedError(
      `a sandbox's network "${policy.kind === "allow" ? "allowlist" : "full"}" needs the service to run as root ` +
        '(its own network namespace with slirp4netns and iptables); as another user only network "none" is held',
    );
  }
  const need = (name: string, pkg: string): string => {
    const path = systemTool(name);
    if (!path) {
      throw new RuntimeUnavailableError(
        "network",
        `a sandbox's own network needs ${name}, which is not installed (apt-get install ${pkg})`,
      );
    }
    return path;
  };
  return {
    unshare: need("unshare", "util-linux"),
    nsenter: need("nsenter", "util-linux"),
    ip: need("ip", "iproute2"),
    ...(policy.kind !== "none" ? { slirp4netns: need("slirp4netns", "slirp4netns") } : {}),
    ...(policy.kind === "allow" ? { iptablesRestore: need("iptables-restore", "iptables") } : {}),
  };
}

/** The command line entering a sandbox's network namespace; the command to run there follows it. */
export function enterNetworkArgs(network: SandboxNetwork): string[] {
  const ns = `/proc/${network.pid}/ns`;
  return network.rootless
    ? [network.nsenter, `--user=${ns}/user`, `--net=${ns}/net`, "--preserve-credentials", "--"]
    : [network.nsenter, `--net=${ns}/net`, "--"];
}
