import type Docker from "dockerode";
import { randomBytes } from "node:crypto";
import { AffinetesError, InfrastructureError, ValidationError } from "../../errors.js";
import type { Deadline } from "../../util/deadline.js";
import type { RuntimeInstance } from "../instance.js";
import { instanceKind } from "../instance-spec.js";
import { sanitizeName } from "../instance-name.js";
import { LABELS, kindOf } from "../labels.js";
import type { PendingInstance, StartDriver } from "../start-sequence.js";
import { holdNetworkPolicy, requireEngineShell } from "./apply-network-policy.js";
import { containerConfig } from "./container-config.js";
import type { ImageFacts } from "./docker-images.js";
import { removeContainer } from "./docker-instance.js";
import type { EngineContext } from "./engine-context.js";
import { instanceFor } from "./engine-context.js";
import type { NetworkPlan } from "./network-plan.js";
import { isSealed, planNetwork, planOf, samePolicy } from "./network-plan.js";

const DEFAULT_START_TIMEOUT_MS = 120_000;

interface Prepared {
  plan: NetworkPlan | undefined;
  image: ImageFacts;
}

/** The Docker runtime's part of the start sequence: containers of one engine. */
export function dockerStartDriver(ctx: EngineContext): StartDriver<Prepared> {
  return {
    kind: "docker",
    kinds: ["serve", "sandbox", "task"],
    startTimeoutMs: DEFAULT_START_TIMEOUT_MS,
    newName: (spec) => `affinetes-${sanitizeName(spec.envName)}-${randomBytes(4).toString("hex")}`,

    async prepare(spec, _name, deadline) {
      if (!spec.image) throw new ValidationError("image", "the docker runtime needs an image");
      // names resolve, and a host that cannot hold the rules refuses, before anything is created
      const plan = await planNetwork(spec);
      if (plan && !isSealed(plan)) requireEngineShell(ctx.shell, ctx.host);
      return { plan, image: await ctx.images.facts(spec.image, spec.pull === true, deadline) };
    },

    async adopt(name, spec, { image }) {
      let info: Docker.ContainerInspectInfo;
      try {
        info = await ctx.docker.getContainer(name).inspect();
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return undefined;
        throw new InfrastructureError(`could not inspect container ${name}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      const labels = info.Config.Labels;
      if (labels?.[LABELS.managed] !== "true") {
        throw new ValidationError(
          "containerName",
          `a container named ${name} exists and was not created by affinetes; choose another name or remove it`,
        );
      }
      const fits =
        !spec.forceRecreate &&
        info.Image === image.id &&
        kindOf(labels) === instanceKind(spec) &&
        samePolicy(planOf(labels), spec.network);
      if (!fits) {
        await removeContainer(ctx.docker, info.Id);
        return undefined;
      }
      // its own plan: the addresses its names resolved to when it was created
      return pending(ctx, info.Id, planOf(labels), true);
    },

    async create(name, spec, { plan, image }, deadline) {
      const envType = spec.envType ?? image.envType;
      const container = await deadline
        .run(() => ctx.docker.createContainer(containerConfig(name, spec, envType, plan, image, ctx.address)))
        .catch((err: unknown) => {
          throw engineRefusal(err);
        });
      return pending(ctx, container.id, plan, false);
    },
  };
}

/** A container made or found, booted by starting it (behind its network rules). */
function pending(
  ctx: EngineContext,
  id: string,
  plan: NetworkPlan | undefined,
  reused: boolean,
): PendingInstance {
  let restarts = 0;
  return {
    async boot(deadline) {
      await startContainer(ctx, id, plan, deadline);
      const info = await deadline.run(() => ctx.docker.getContainer(id).inspect());
      restarts = info.RestartCount;
      return instanceFor(ctx, info, reused);
    },
    failure: () => exitReason(ctx.docker, id, restarts),
    async discard(instance: RuntimeInstance | undefined) {
      // an adopted container stays as it was found; a new one goes
      if (reused) await instance?.detach();
      else if (instance) await instance.stop();
      else await removeContainer(ctx.docker, id);
    },
  };
}

/**
 * Starts a container, unless it runs: under a network plan, off the network until its
 * rules hold (which a running one gets again, in case it was restarted without them).
 */
async function startContainer(
  ctx: EngineContext,
  id: string,
  plan: NetworkPlan | undefined,
  deadline: Deadline,
): Promise<void> {
  if (plan && !isSealed(plan)) {
    const shell = requireEngineShell(ctx.shell, ctx.host);
    await deadline.run((signal) => holdNetworkPolicy(ctx.docker, id, plan, shell, { signal }));
    return;
  }
  const info = await deadline.run(() => ctx.docker.getContainer(id).inspect());
  if (info.State.Running) return;
  await deadline
    .run((signal) => ctx.docker.getContainer(id).start(signal ? { abortSignal: signal } : {}))
    .catch((err: unknown) => {
      throw engineRefusal(err);
    });
}

/**
 * A start the engine refused for what the spec asked (a 4xx of its API: a limit out of
 * its range, a port it cannot publish) is the caller's error; anything else stays as it is.
 */
function engineRefusal(err: unknown): unknown {
  if (err instanceof AffinetesError) return err;
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === "number" && status >= 400 && status < 500)
    return new ValidationError("container", `the engine refused it: ${(err as Error).message}`);
  return err;
}

/**
 * Why the container can no longer become ready, if it cannot. Any restart since
 * `baselineRestarts` counts: with restart policy `always` a crashing server is rarely
 * caught in the exited state, but its restart count gives it away.
 */
async function exitReason(docker: Docker, id: string, baselineRestarts: number): Promise<string | undefined> {
  try {
    const info = await docker.getContainer(id).inspect();
    const state = info.State;
    const restarted = info.RestartCount > baselineRestarts;
    if (state.Running && !state.Restarting && !restarted) return undefined;
    if (state.OOMKilled) return "the container was killed for exceeding its memory limit";
    const restarts = restarted ? `, restarted ${info.RestartCount - baselineRestarts} time(s)` : "";
    return `the container exited with code ${state.ExitCode}${restarts}${state.Error ? ` (${state.Error})` : ""}`;
  } catch (err) {
    return `the container disappeared (${(err as Error).message})`;
  }
}
