/** Exit code of `netnsRulesScript` when the host lacks what the rules need (root, nsenter, iptables). */
export const RULES_PREREQUISITE_EXIT = 97;

/** What every line of the script's own reports starts with, so a caller can tell them from the tools' output. */
export const RULES_REPORT_PREFIX = "affinetes-network:";

/** How the script reports a host that lacks what the rules need (root, the tools). */
const PREREQUISITE_REPORT = `${RULES_REPORT_PREFIX} this host cannot hold a network policy:`;

/** What a host lacks to hold a network policy, when `output` (a job's log) reports it. */
export function missingPrerequisite(output: string): string | undefined {
  const at = output.indexOf(PREREQUISITE_REPORT);
  if (at < 0) return undefined;
  return output
    .slice(at + PREREQUISITE_REPORT.length)
    .split("\n")[0]
    ?.trim();
}

/** IPv6 is not part of any policy (allowlists name IPv4): a sandbox under one has none beyond loopback. */
const IPV6_RULES = [
  "*filter",
  ":INPUT DROP [0:0]",
  ":FORWARD DROP [0:0]",
  ":OUTPUT DROP [0:0]",
  "-A INPUT -i lo -j ACCEPT",
  "-A OUTPUT -o lo -j ACCEPT",
  "COMMIT",
  "",
].join("\n");

/**
 * The checks a host must pass to hold a sandbox's network rules: root, and the tools.
 * Run before anything is created where that is possible (a Slurm job), and before the
 * rules themselves everywhere.
 */
export function rulesPrerequisitesScript(): string {
  return [
    // sbin holds the tools; a non-login shell (ssh, a job) may lack it
    'PATH="$PATH:/usr/sbin:/sbin"',
    `[ "$(id -u)" = 0 ] || { echo "${PREREQUISITE_REPORT} root is needed to set a sandbox's network rules (this is user $(id -un))" >&2; exit ${RULES_PREREQUISITE_EXIT}; }`,
    "for tool in nsenter iptables-restore ip6tables-restore; do",
    `  command -v "$tool" >/dev/null 2>&1 || { echo "${PREREQUISITE_REPORT} $tool is missing (install util-linux and iptables)" >&2; exit ${RULES_PREREQUISITE_EXIT}; }`,
    "done",
  ].join("\n");
}

/**
 * A POSIX sh script that replaces the filter tables of the network namespace at `netns`
 * (a shell word: a quoted path, or a variable) with `rules` (iptables-restore input,
 * expanded by the shell: it may name variables, and holds no other `$`, backquote or
 * backslash), and drops all IPv6 there. Naming the namespace by its file (Docker's
 * SandboxKey), not by a process id, means a container that died meanwhile fails the
 * script rather than a reused pid's namespace getting the rules.
 */
export function netnsRulesScript(netns: string, rules: string): string {
  return [
    rulesPrerequisitesScript(),
    `[ -n ${netns} ] && [ -e ${netns} ] || { echo "${RULES_REPORT_PREFIX} the sandbox's network namespace is gone" >&2; exit 1; }`,
    `nsenter --net=${netns} iptables-restore <<AFFINETES_RULES || exit 1`,
    rules.trimEnd(),
    "AFFINETES_RULES",
    // a kernel without IPv6 has nothing to drop
    `nsenter --net=${netns} sh -c '[ ! -e /proc/net/if_inet6 ] || ip6tables-restore' <<'AFFINETES_RULES' || exit 1`,
    IPV6_RULES.trimEnd(),
    "AFFINETES_RULES",
  ].join("\n");
}
