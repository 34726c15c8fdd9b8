import type Docker from "dockerode";
import { InfrastructureError, RuntimeUnavailableError } from "../../errors.js";
import { runLocal } from "../../host/local-command.js";
import type { OperationOptions } from "../../util/deadline.js";
import { shellQuote } from "../../util/shell-quote.js";
import type { ExecResult } from "../instance.js";
import { egressRules } from "../network-policy.js";
import type { DockerConnection, DockerEngine } from "./docker-connection.js";
import type { NetworkPlan } from "./network-plan.js";
import {
  RULES_PREREQUISITE_EXIT,
  RULES_REPORT_PREFIX,
  missingPrerequisite,
  netnsRulesScript,
} from "./netns-rules-script.js";

/** Runs a shell script on the host of a Docker engine. */
export type EngineShell = (script: string, options: OperationOptions) => Promise<ExecResult>;

/** The network containers join once their rules hold: the engine's default bridge. */
const BRIDGE = "bridge";
const RULES_TIMEOUT_MS = 30_000;

/**
 * The shell of the engine's host, where a container's namespace can be entered: this
 * machine for a local socket, the host's shared SSH connection for a remote engine.
 * Undefined for a tcp engine: its host is out of reach.
 */
export function engineShell(engine: DockerEngine, connection: DockerConnection): EngineShell | undefined {
  const sshHost = engine.sshHost;
  if (sshHost) return (script, options) => sshHost.exec(script, options);
  if ("socketPath" in connection) return (script, options) => runLocal(script, options);
  return undefined;
}

/** Refuses a policy on an engine whose host cannot be reached, before anything is created. */
export function requireEngineShell(shell: EngineShell | undefined, host: string): EngineShell {
  if (shell) return shell;
  throw new RuntimeUnavailableError(
    "docker",
    `a network policy other than "full" is set from the engine's host, which ${host} (a tcp engine) does not give access to: use a local socket or ssh://`,
  );
}

/**
 * Starts a container under its plan (or holds the plan again on a running one), so
 * that none of its code ever has a network the rules do not hold: off every network, it
 * starts with loopback only; the rules are set in its namespace from the engine's host;
 * only then does it join the bridge. Its open ports answer nobody until the bridge's
 * gateway is known, then only the gateway (through which its clients come).
 */
export async function holdNetworkPolicy(
  docker: Docker,
  id: string,
  plan: NetworkPlan,
  shell: EngineShell,
  options: OperationOptions = {},
): Promise<void> {
  const container = docker.getContainer(id);
  const info = await container.inspect();
  if (!info.State.Running) {
    // a stopped container rejoins its networks as it starts: leave them first
    for (const name of Object.keys(info.NetworkSettings.Networks ?? {})) await leave(docker, name, id);
    await container.start();
  }
  try {
    await holdOnRunning(docker, container, plan, shell, options);
  } catch (err) {
    // one that ended meanwhile (a short task, a crash) never had more network than the rules: its start says why
    if (!(await container.inspect().catch(() => undefined))?.State.Running) return;
    throw err;
  }
}

async function holdOnRunning(
  docker: Docker,
  container: Docker.Container,
  plan: NetworkPlan,
  shell: EngineShell,
  options: OperationOptions,
): Promise<void> {
  const id = container.id;
  let info = await container.inspect();
  const netns = info.NetworkSettings.SandboxKey;
  if (!netns) throw new InfrastructureError(`container ${info.Name} has no network namespace to hold rules`);
  if (!info.NetworkSettings.Networks?.[BRIDGE]) {
    await applyRules(shell, netns, egressRules(plan.resolved, []), options);
    for (const name of Object.keys(info.NetworkSettings.Networks ?? {})) await leave(docker, name, id);
    await docker.getNetwork(BRIDGE).connect({ Container: id });
    info = await container.inspect();
  }
  const bridge = info.NetworkSettings.Networks?.[BRIDGE];
  if (!bridge?.Gateway || !bridge.IPAddress)
    throw new InfrastructureError(`container ${info.Name} joined the bridge without an address`);
  const subnet = networkOf(bridge.IPAddress, bridge.IPPrefixLen);
  await applyRules(
    shell,
    netns,
    egressRules(plan.resolved, plan.openPorts, { bridge: { gateway: bridge.Gateway, subnet } }),
    options,
  );
}

/**
 * Replaces the filter rules of the namespace at `netns` on the engine's host. A host
 * without root, nsenter or iptables is a `RuntimeUnavailableError` naming what is missing.
 */
export async function applyRules(
  shell: EngineShell,
  netns: string,
  rules: string,
  options: OperationOptions = {},
): Promise<void> {
  const result = await shell(netnsRulesScript(shellQuote(netns), rules), {
    timeoutMs: options.timeoutMs ?? RULES_TIMEOUT_MS,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (result.exitCode === 0) return;
  const missing = missingPrerequisite(result.stderr);
  if (result.exitCode === RULES_PREREQUISITE_EXIT && missing !== undefined)
    throw new RuntimeUnavailableError("docker", `the engine's host cannot hold a network policy: ${missing}`);
  const report = result.stderr.split("\n").find((l) => l.startsWith(RULES_REPORT_PREFIX));
  const why =
    (report?.slice(RULES_REPORT_PREFIX.length) ?? result.stderr).trim() || `exit ${result.exitCode}`;
  throw new InfrastructureError(`could not set the sandbox's network rules: ${why}`);
}

async function leave(docker: Docker, network: string, id: string): Promise<void> {
  try {
    await docker.getNetwork(network).disconnect({ Container: id, Force: true });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
}

/** `172.17.0.5`, 16 -> `172.17.0.0/16`. */
export function networkOf(address: string, prefix: number): string {
  const value = address.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const net = (value & mask) >>> 0;
  return `${[24, 16, 8, 0].map((s) => (net >>> s) & 255).join(".")}/${prefix}`;
}
