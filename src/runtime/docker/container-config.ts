import type Docker from "dockerode";
import { AUTH_TOKEN_VARIABLE } from "../../server/server-files.js";
import { instanceToken } from "../../transport/auth-token.js";
import type { EnvType, InstanceSpec } from "../instance-spec.js";
import { instanceKind } from "../instance-spec.js";
import { KEEP_ALIVE_SCRIPT } from "../keep-alive.js";
import { instanceLabels, LABELS } from "../labels.js";
import type { AddressMode } from "./container-endpoint.js";
import { SERVER_PORT_KEY } from "./container-endpoint.js";
import type { ImageFacts } from "./docker-images.js";
import type { NetworkPlan } from "./network-plan.js";
import { NETWORK_LABEL, planHostConfig, planLabel, waitForNetwork } from "./network-plan.js";

/** The engine's create options of a new container for `spec`. */
export function containerConfig(
  name: string,
  spec: InstanceSpec,
  envType: EnvType,
  plan: NetworkPlan | undefined,
  image: ImageFacts,
  address: AddressMode,
): Docker.ContainerCreateOptions {
  const kind = instanceKind(spec);
  const serves = kind === "serve";
  const published = serves && address === "published";
  const extraPorts = (spec.ports ?? []).map((p) => `${p}/tcp`);
  return {
    name,
    Image: spec.image,
    Env: containerEnv(spec),
    Labels: {
      ...instanceLabels(spec),
      [LABELS.envType]: envType,
      ...(plan ? { [NETWORK_LABEL]: planLabel(plan) } : {}),
    },
    ...(serves ? {} : idleOrTask(spec.task, plan, image)),
    ExposedPorts: Object.fromEntries(
      [...(serves ? [SERVER_PORT_KEY] : []), ...extraPorts].map((p) => [p, {}]),
    ),
    ...(spec.workdir !== undefined ? { WorkingDir: spec.workdir } : {}),
    HostConfig: {
      // a task runs once; whatever else serves comes back after a crash
      RestartPolicy: { Name: spec.restartPolicy ?? (kind === "task" ? "no" : "always") },
      ...(spec.memoryBytes !== undefined ? { Memory: spec.memoryBytes, MemorySwap: spec.memoryBytes } : {}),
      ...(spec.cpus !== undefined ? { NanoCpus: Math.round(spec.cpus * 1e9) } : {}),
      // Published only on loopback: nothing is ever opened to the network.
      PortBindings: Object.fromEntries(
        [...(published ? [SERVER_PORT_KEY] : []), ...extraPorts].map((p) => [
          p,
          [{ HostIp: "127.0.0.1", HostPort: "" }],
        ]),
      ),
      ...(spec.mounts?.length
        ? {
            Mounts: spec.mounts.map((m) => ({
              Type: "bind" as const,
              Source: m.source,
              Target: m.target,
              ReadOnly: m.readOnly ?? false,
            })),
          }
        : {}),
      ...(plan ? planHostConfig(plan) : {}),
    },
  };
}

/**
 * The container's environment, with its method server's token: kept in the container's
 * own configuration, which only the engine's users read (as they could exec into it anyway),
 * never in a label or an image, and never visible to another container.
 */
function containerEnv(spec: InstanceSpec): string[] {
  const token = instanceKind(spec) === "serve" ? instanceToken(spec) : undefined;
  const vars = token ? { ...spec.envVars, [AUTH_TOKEN_VARIABLE]: token } : (spec.envVars ?? {});
  return Object.entries(vars).map(([k, v]) => `${k}=${v}`);
}

/** The token an existing container's server was started with, read back from its configuration. */
export function tokenOf(info: Docker.ContainerInspectInfo): string | undefined {
  const prefix = `${AUTH_TOKEN_VARIABLE}=`;
  const entry = info.Config.Env?.find((e) => e.startsWith(prefix));
  return entry ? entry.slice(prefix.length) || undefined : undefined;
}

/**
 * What a container without a method server runs: an idle shell (sandbox), or its task
 * (which, under an allowlist, waits for the network it joins a moment after starting).
 */
function idleOrTask(
  task: InstanceSpec["task"],
  plan: NetworkPlan | undefined,
  image: ImageFacts,
): Partial<Docker.ContainerCreateOptions> {
  if (!task) return { Entrypoint: ["sh", "-c", KEEP_ALIVE_SCRIPT], Cmd: [] };
  const command = task.command !== undefined ? ["sh", "-c", task.command] : undefined;
  if (plan?.resolved.kind === "allow")
    return { Entrypoint: waitForNetwork(command ?? image.command), Cmd: [] };
  return command ? { Entrypoint: command, Cmd: [] } : {};
}
