import { shellQuote } from "../util/shell-quote.js";
import { INSTANCE_TAG_VARIABLE } from "../util/tagged-processes.js";
import type { ResolvedNetworkPolicy } from "./network-policy.js";
import { egressRules } from "./network-policy.js";
import type { NetworkTools } from "./sandbox-network.js";

/** Files the holder writes in its folder: the namespace's pid once it is ready, or why it failed. */
export const NETWORK_READY_FILE = "network.ready";
export const NETWORK_FAILED_FILE = "network.failed";

export interface NetworkHolderOptions {
  tools: NetworkTools;
  policy: ResolvedNetworkPolicy;
  rootless: boolean;
  /** A folder of the service's (never the sandbox's) for the ready and failed files and slirp4netns's log. */
  dir: string;
  /** What the process in the namespace runs: an idle shell loop (`KEEP_ALIVE_SCRIPT`, ...). */
  idle: string;
  /** A shell word giving the instance's tag: everything started here carries it, so stopping and GC find it. */
  tag: string;
}

/**
 * The script (POSIX sh, run outside the sandbox by the service or by a Slurm job) that
 * makes a sandbox's network and holds it: an idle process in a new network namespace,
 * its loopback up; for `full` and allowlists, slirp4netns giving it outbound traffic
 * through a user-mode NAT that refuses the host's loopback (--disable-host-loopback);
 * for an allowlist, the rules applied from outside before it is reported ready. It writes
 * the namespace's pid to `network.ready`, then waits: TERM (stop, scancel) ends the
 * namespace's process and slirp4netns with it, and so does the idle process ending.
 */
export function networkHolderScript(options: NetworkHolderOptions): string {
  const { tools, policy, rootless } = options;
  const q = shellQuote;
  const userns = rootless ? " --user --map-root-user" : "";
  const enter = rootless
    ? `${q(tools.nsenter)} --user=/proc/$holder/ns/user --net=/proc/$holder/ns/net --preserve-credentials --`
    : `${q(tools.nsenter)} --net=/proc/$holder/ns/net --`;
  const lines = [
    "#!/bin/sh",
    `dir=${q(options.dir)}`,
    `export ${INSTANCE_TAG_VARIABLE}=${options.tag}`,
    `rm -f "$dir/${NETWORK_READY_FILE}" "$dir/${NETWORK_FAILED_FILE}"`,
    "holder=; slirp=",
    `fail() { printf '%s\\n' "$1" > "$dir/${NETWORK_FAILED_FILE}.tmp"; mv "$dir/${NETWORK_FAILED_FILE}.tmp" "$dir/${NETWORK_FAILED_FILE}"; kill $holder $slirp 2>/dev/null; exit 1; }`,
    `trap 'kill $holder $slirp 2>/dev/null; exit 0' TERM INT`,
    `${q(tools.unshare)} --net${userns} -- /bin/sh -c ${q(options.idle)} &`,
    "holder=$!",
    // unshare runs the idle shell once the namespace exists: wait until the pid is in another one
    "own=$(readlink /proc/$$/ns/net)",
    "i=0",
    'while ns=$(readlink /proc/$holder/ns/net 2>/dev/null) && [ "$ns" = "$own" ]; do',
    '  i=$((i + 1)); [ $i -lt 1000 ] || fail "the network namespace was not made in time"; sleep 0.01',
    "done",
    'kill -0 $holder 2>/dev/null || fail "unshare --net failed (see the instance log)"',
    `${enter} ${q(tools.ip)} link set lo up || fail "cannot bring the namespace's loopback up"`,
  ];
  if (policy.kind !== "none" && tools.slirp4netns) {
    lines.push(
      // the NAT runs in the host's namespace, sandboxed and filtered; the host's loopback is refused
      `${q(tools.slirp4netns)} --configure --mtu=65520 --disable-host-loopback --enable-sandbox --enable-seccomp $holder tap0 >"$dir/slirp4netns.log" 2>&1 &`,
      "slirp=$!",
      "i=0",
      `until ${enter} ${q(tools.ip)} -4 -o addr show dev tap0 2>/dev/null | grep -q inet; do`,
      '  kill -0 $slirp 2>/dev/null || fail "slirp4netns exited: $(tail -n 3 "$dir/slirp4netns.log" 2>/dev/null)"',
      '  i=$((i + 1)); [ $i -lt 1000 ] || fail "slirp4netns did not configure the namespace in time"; sleep 0.01',
      "done",
    );
  }
  if (policy.kind === "allow" && tools.iptablesRestore) {
    lines.push(
      `${enter} ${q(tools.iptablesRestore)} <<'AFFINETES_RULES' || fail "iptables-restore refused the allowlist's rules"`,
      egressRules(policy).trimEnd(),
      "AFFINETES_RULES",
    );
  }
  lines.push(
    `echo $holder > "$dir/${NETWORK_READY_FILE}.tmp" && mv "$dir/${NETWORK_READY_FILE}.tmp" "$dir/${NETWORK_READY_FILE}"`,
    "wait $holder",
    "kill $slirp 2>/dev/null",
    "exit 0",
    "",
  );
  return lines.join("\n");
}
