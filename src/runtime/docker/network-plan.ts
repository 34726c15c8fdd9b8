import type Docker from "dockerode";
import { z } from "zod";
import { SERVER_PORT } from "../../config.js";
import type { InstanceSpec } from "../instance.js";
import type { NetworkPolicy, ResolvedNetworkPolicy } from "../network-policy.js";
import { networkPolicySchema, parseAllowEntry, resolveNetworkPolicy } from "../network-policy.js";

/** The label recording a container's network plan, so a revive or an adoption holds it again. */
export const NETWORK_LABEL = "affinetes.network";

/** How one container holds its network policy (never made for `"full"`). */
export interface NetworkPlan {
  /** The policy as asked: an adoption compares it. */
  policy: NetworkPolicy;
  /** Its names resolved once, at the first start: later starts reuse the addresses. */
  resolved: ResolvedNetworkPolicy;
  /** Ports its clients reach: the method server's, published ones. */
  openPorts: number[];
  /** `name:address` of the allowlist's names, for the sandbox's /etc/hosts (it may reach no resolver). */
  hosts: string[];
}

const planSchema = z.object({
  policy: networkPolicySchema,
  resolved: z.discriminatedUnion("kind", [
    z.object({ kind: z.literal("none") }),
    z.object({ kind: z.literal("full") }),
    z.object({
      kind: z.literal("allow"),
      destinations: z.array(z.object({ cidr: z.string(), port: z.number().int().optional() })),
    }),
  ]),
  openPorts: z.array(z.number().int()),
  hosts: z.array(z.string()),
});

/**
 * The plan of a spec's network policy, its names resolved now; undefined for `"full"`,
 * which needs nothing. A name that does not resolve is a `ValidationError`.
 */
export async function planNetwork(spec: InstanceSpec): Promise<NetworkPlan | undefined> {
  const policy = spec.network;
  if (policy === undefined || policy === "full") return undefined;
  const openPorts = [...(spec.serve !== false ? [SERVER_PORT] : []), ...(spec.ports ?? [])];
  if (policy === "none") return { policy, resolved: { kind: "none" }, openPorts, hosts: [] };
  const destinations: Array<{ cidr: string; port: number | undefined }> = [];
  const hosts: string[] = [];
  for (const text of policy.allow) {
    const resolved = await resolveNetworkPolicy({ allow: [text] });
    if (resolved.kind !== "allow") continue;
    destinations.push(...resolved.destinations);
    const entry = parseAllowEntry(text);
    if (entry.prefix === undefined)
      hosts.push(...resolved.destinations.map((d) => `${entry.host}:${d.cidr.replace(/\/32$/, "")}`));
  }
  return { policy, resolved: { kind: "allow", destinations }, openPorts, hosts };
}

/**
 * Whether the container is kept off every network for good: `"none"` with nothing to
 * answer. Any other plan joins the bridge behind rules.
 */
export function isSealed(plan: NetworkPlan): boolean {
  return plan.resolved.kind === "none" && plan.openPorts.length === 0;
}

/** The label value of a plan. */
export function planLabel(plan: NetworkPlan): string {
  return JSON.stringify(plan);
}

/** The plan a container was created with; undefined when it has none (`"full"`) or the label is not ours. */
export function planOf(labels: Readonly<Record<string, string>> | undefined): NetworkPlan | undefined {
  const text = labels?.[NETWORK_LABEL];
  if (text === undefined) return undefined;
  try {
    const parsed = planSchema.parse(JSON.parse(text));
    const resolved: ResolvedNetworkPolicy =
      parsed.resolved.kind === "allow"
        ? {
            kind: "allow",
            destinations: parsed.resolved.destinations.map((d) => ({ cidr: d.cidr, port: d.port })),
          }
        : parsed.resolved;
    return { ...parsed, policy: parsed.policy as NetworkPolicy, resolved };
  } catch {
    return undefined;
  }
}

/** Whether a container's plan holds the policy asked for now. */
export function samePolicy(plan: NetworkPlan | undefined, asked: NetworkPolicy | undefined): boolean {
  const normal = (p: NetworkPolicy | undefined) =>
    JSON.stringify(p === undefined || p === "full" ? "full" : p);
  return normal(plan?.policy) === normal(asked);
}

/**
 * What a container under a plan is created with: no network (it joins the bridge only
 * once its rules hold), no raw sockets (a packet socket sends past the rules), the
 * allowlist's names in /etc/hosts, and no restart by the engine (a restarted container
 * gets a new namespace without the rules: `revive` starts it the way `start` did).
 */
export function planHostConfig(plan: NetworkPlan): Docker.HostConfig {
  return {
    NetworkMode: "none",
    CapDrop: ["NET_RAW"],
    RestartPolicy: { Name: "no" },
    ...(plan.hosts.length ? { ExtraHosts: plan.hosts } : {}),
  };
}

/**
 * A task under an allowlist starts before it joins the bridge: its command waits (up to
 * 30 s) until an interface besides loopback is there, then runs as it would have.
 */
export function waitForNetwork(command: readonly string[]): string[] {
  const wait =
    "i=0; while [ $i -lt 300 ] && ! grep -qv -e '|' -e '^ *lo:' /proc/net/dev; do sleep 0.1; i=$((i+1)); done; " +
    'exec "$@"';
  return ["sh", "-c", wait, "sh", ...command];
}
