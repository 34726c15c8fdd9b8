import type Docker from "dockerode";
import { LABELS, kindOf } from "../labels.js";
import type { EngineShell } from "./apply-network-policy.js";
import { holdNetworkPolicy, requireEngineShell } from "./apply-network-policy.js";
import type { AddressMode } from "./container-endpoint.js";
import type { ContainerReach } from "./container-reach.js";
import { directReach, noReach, tunnelReach } from "./container-reach.js";
import { tokenOf } from "./container-config.js";
import type { DockerConnection, DockerEngine } from "./docker-connection.js";
import type { DockerEvents } from "./docker-events.js";
import type { DockerImages } from "./docker-images.js";
import { DockerInstance } from "./docker-instance.js";
import { isSealed, planOf } from "./network-plan.js";

/** One engine as the Docker runtime's parts share it. */
export interface EngineContext {
  readonly docker: Docker;
  readonly engine: DockerEngine;
  readonly connection: DockerConnection;
  /** `localhost`, or the SSH host's label. */
  readonly host: string;
  readonly address: AddressMode;
  readonly events: DockerEvents;
  readonly images: DockerImages;
  /** Where network rules are set: the engine's host (undefined for a tcp engine). */
  readonly shell: EngineShell | undefined;
}

/** A new DockerInstance for an inspected container: its own route, and its own share of the host. */
export async function instanceFor(
  ctx: EngineContext,
  info: Docker.ContainerInspectInfo,
  reused: boolean,
): Promise<DockerInstance> {
  const sshHost = ctx.engine.sshHost;
  const kind = kindOf(info.Config.Labels);
  const serves = kind === "serve";
  const reach: ContainerReach = !serves ? noReach : sshHost ? tunnelReach(sshHost) : directReach(ctx.address);
  const share = sshHost?.share(); // the instance's own hold on the host's connection
  const release = () => void share?.close();
  const plan = planOf(info.Config.Labels);
  try {
    return new DockerInstance({
      docker: ctx.docker,
      connection: ctx.connection,
      reach,
      host: ctx.host,
      release,
      events: ctx.events,
      id: info.Id,
      name: info.Name.replace(/^\//, ""),
      kind,
      envType: info.Config.Labels?.[LABELS.envType] === "http_based" ? "http_based" : "function_based",
      endpoint: serves ? await reach.open(info) : "",
      reused,
      keep: info.Config.Labels?.[LABELS.keep] === "true",
      ...(plan && !isSealed(plan)
        ? {
            startAgain: () =>
              holdNetworkPolicy(ctx.docker, info.Id, plan, requireEngineShell(ctx.shell, ctx.host)),
          }
        : {}),
      authToken: serves ? tokenOf(info) : undefined,
    });
  } catch (err) {
    await reach.close();
    release();
    throw err;
  }
}
