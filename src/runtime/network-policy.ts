import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { z } from "zod";
import { ValidationError } from "../errors.js";
import { parseOptions } from "../util/validate.js";

/**
 * What a sandbox may reach on the network:
 * - `"none"`: nothing (its own loopback only; a serving instance still answers its client),
 * - `"full"`: whatever its host reaches, as with plain Docker (the default),
 * - `{ allow: [...] }`: only these destinations, each `"<host or IPv4 CIDR>[:port]"`
 *   (`"10.0.0.5"`, `"10.0.0.0/24"`, `"api.example.com:443"`). Names resolve once, when
 *   the instance starts; a later change of their address is not followed.
 */
export type NetworkPolicy = "none" | "full" | { readonly allow: readonly string[] };

/** One destination of an allowlist, as written: a host name or an IPv4 address/CIDR, and an optional port. */
export interface AllowEntry {
  host: string;
  /** Prefix length when `host` is an address (32 for a single address); undefined for a name. */
  prefix: number | undefined;
  port: number | undefined;
}

/** A policy with every name resolved: what the rules of one instance are made from. */
export type ResolvedNetworkPolicy =
  | { kind: "none" }
  | { kind: "full" }
  | { kind: "allow"; destinations: ReadonlyArray<{ cidr: string; port: number | undefined }> };

const MAX_ALLOW_ENTRIES = 64;

/** One allowlist entry: parsed strictly, so a typo is an error rather than a rule that never matches. */
export function parseAllowEntry(entry: string): AllowEntry {
  const match = /^([A-Za-z0-9.-]+)(?:\/(\d{1,2}))?(?::(\d{1,5}))?$/.exec(entry);
  if (!match) throw new Error(`"${entry}" is not "<host or IPv4 CIDR>[:port]"`);
  const [, host = "", prefixText, portText] = match;
  const port = portText !== undefined ? Number(portText) : undefined;
  if (port !== undefined && (port < 1 || port > 65535)) throw new Error(`"${entry}": port out of range`);
  if (isIP(host) === 4) {
    const prefix = prefixText !== undefined ? Number(prefixText) : 32;
    if (prefix > 32) throw new Error(`"${entry}": prefix length above 32`);
    return { host, prefix, port };
  }
  if (prefixText !== undefined) throw new Error(`"${entry}": a prefix length needs an IPv4 address`);
  if (/^[\d.]+$/.test(host)) throw new Error(`"${entry}" is not an IPv4 address`);
  if (
    !/^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(
      host,
    )
  )
    throw new Error(`"${entry}" is not a host name`);
  return { host, prefix: undefined, port };
}

/** The schema of a network policy in every face (REST, SDK options, the catalogue). */
export const networkPolicySchema = z.union([
  z.enum(["none", "full"]),
  z.strictObject({
    allow: z
      .array(
        z
          .string()
          .max(300)
          .superRefine((entry, ctx) => {
            try {
              parseAllowEntry(entry);
            } catch (err) {
              ctx.addIssue({ code: "custom", message: (err as Error).message });
            }
          }),
      )
      .max(MAX_ALLOW_ENTRIES),
  }),
]);

/** Validates a policy given by a caller; `option` names it in the error. */
export function parseNetworkPolicy(input: unknown, option = "network"): NetworkPolicy {
  return parseOptions(networkPolicySchema, input, option);
}

/**
 * Resolves an allowlist's names to addresses (once, at start). A name that does not
 * resolve is the caller's error: a sandbox would otherwise start without the access it
 * was promised.
 */
export async function resolveNetworkPolicy(
  policy: NetworkPolicy | undefined,
  option = "network",
): Promise<ResolvedNetworkPolicy> {
  if (policy === undefined || policy === "full") return { kind: "full" };
  if (policy === "none") return { kind: "none" };
  const destinations: Array<{ cidr: string; port: number | undefined }> = [];
  for (const text of policy.allow) {
    let entry: AllowEntry;
    try {
      entry = parseAllowEntry(text);
    } catch (err) {
      throw new ValidationError(`${option}.allow`, (err as Error).message);
    }
    if (entry.prefix !== undefined) {
      destinations.push({ cidr: `${entry.host}/${entry.prefix}`, port: entry.port });
      continue;
    }
    const addresses = await lookup(entry.host, { all: true, family: 4 }).catch((err: Error) => {
      throw new ValidationError(`${option}.allow`, `${entry.host} does not resolve: ${err.message}`);
    });
    for (const { address } of addresses) destinations.push({ cidr: `${address}/32`, port: entry.port });
  }
  return { kind: "allow", destinations };
}

/** Options of `egressRules`. */
export interface EgressRuleOptions {
  /**
   * The bridge network the sandbox is on, once known. Its open ports then answer the
   * bridge's gateway (the engine's host, through which its clients come: published ports,
   * tunnels) and none of its neighbours on the bridge; `fromBeyond` also lets in
   * addresses from beyond the bridge (clients on other machines, through a port the host
   * forwards). Without it, the open ports answer anyone.
   */
  bridge?: { gateway: string; subnet: string; fromBeyond?: boolean };
}

/**
 * The iptables rules (`iptables-restore` input, filter table) that hold a policy inside
 * the sandbox's own network namespace. They are applied from outside, before anything
 * of the sandbox runs, by a process the sandbox cannot reach (it has no CAP_NET_ADMIN).
 * Inbound, only `openPorts` (its method server, published ports) and replies pass;
 * outbound, only loopback, replies and the allowed destinations.
 */
export function egressRules(
  policy: ResolvedNetworkPolicy,
  openPorts: readonly number[] = [],
  options: EgressRuleOptions = {},
): string {
  if (policy.kind === "full") return "";
  const lines = [
    "*filter",
    ":INPUT DROP [0:0]",
    ":FORWARD DROP [0:0]",
    ":OUTPUT DROP [0:0]",
    "-A INPUT -i lo -j ACCEPT",
    "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    ...inboundRules(openPorts, options.bridge),
    "-A OUTPUT -o lo -j ACCEPT",
    "-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
  ];
  if (policy.kind === "allow") {
    for (const { cidr, port } of policy.destinations) {
      if (port === undefined) lines.push(`-A OUTPUT -d ${cidr} -j ACCEPT`);
      else
        for (const proto of ["tcp", "udp"])
          lines.push(`-A OUTPUT -d ${cidr} -p ${proto} --dport ${port} -j ACCEPT`);
    }
  }
  // refused at once rather than dropped: a blocked connection fails fast and says so
  lines.push("-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset", "-A OUTPUT -j REJECT", "COMMIT", "");
  return lines.join("\n");
}

/** Who may open connections to the open ports (see `EgressRuleOptions.bridge`). */
function inboundRules(openPorts: readonly number[], bridge: EgressRuleOptions["bridge"]): string[] {
  const accept = (from: string) =>
    openPorts.map((port) => `-A INPUT${from} -p tcp --dport ${port} -j ACCEPT`);
  if (!bridge) return accept("");
  if (openPorts.length === 0) return [];
  return [
    ...accept(` -s ${bridge.gateway}/32`),
    ...(bridge.fromBeyond ? [`-A INPUT -s ${bridge.subnet} -j DROP`, ...accept("")] : []),
  ];
}
