import type { FastifyInstance } from "fastify";
import { join } from "node:path";
import { stateDir } from "../config.js";
import { ControlPlane } from "../control/control-plane.js";
import { ApiKeys } from "../auth/principals.js";
import { ValidationError } from "../errors.js";
import { answeringDocker } from "../runtime/resolve-runtime.js";
import type { NetworkPolicy } from "../runtime/network-policy.js";
import type { ResourceLimits } from "../rollout/instance-store.js";
import { ColoniesServer } from "../queue/colonies-server.js";
import { EnvironmentCatalog } from "../rollout/environment-catalog.js";
import { buildHttpApp } from "./http-app.js";
import { CONTAINER_TYPES } from "../rollout/request-schemas.js";
import type { RecoveryReport } from "../rollout/rollout-service.js";
import { RolloutService } from "../rollout/rollout-service.js";
import { serviceRuntimes } from "./service-runtimes.js";
import { openServiceStores } from "./service-stores.js";

/** Everything `afs serve` is configured with (flags, validated). */
export interface ServiceConfig {
  runner: "local" | "slurm";
  sbatchArgs: readonly string[];
  environmentsFile?: string | undefined;
  /** A SQLite file, or a `postgres://` URL; default `<state dir>/service.db`. */
  db?: string | undefined;
  serviceId: string;
  limits: ResourceLimits;
  /** What an instance is charged of a resource its request leaves out (`--default-resources`). */
  defaultResources?: ResourceLimits | undefined;
  /** The network policy of instances whose request and predefined entry give none (`--default-network`). */
  defaultNetwork?: NetworkPolicy | undefined;
  idleTtlS?: number | undefined;
  maxOutputBytes: number;
  defaultTimeoutS: number;
  apiKey?: string | undefined;
  apiKeysFile?: string | undefined;
  /** Where local disks keep their folders; default `<state dir>/disks`. */
  disksDir?: string | undefined;
  /** Cap of one file uploaded to a disk; default 1 GiB. */
  maxFileBytes?: number | undefined;
  /** Cap of an uploaded image build context; default 512 MiB. */
  maxContextBytes?: number | undefined;
  /** The ColonyOS server owner's id (who adds colonies); the queue is served at `/api` when given. */
  coloniesServerId?: string | undefined;
  /** When set, the queue's `/api` and `/pubsub` also require `Authorization: Bearer <queueKey>`. */
  queueKey?: string | undefined;
  version: string;
}

/** A service assembled and recovered, ready to listen. */
export interface OpenedService {
  app: FastifyInstance;
  recovered: RecoveryReport;
  /** Closes everything; `stopInstances` also stops the rollout instances. */
  close(options: { stopInstances: boolean }): Promise<void>;
}

/**
 * Assembles the service: stores, runtimes, the rollout service and the control plane
 * on one fastify app, and reconciles both with what still runs.
 */
export async function openService(config: ServiceConfig): Promise<OpenedService> {
  const keys = ApiKeys.load({ apiKey: config.apiKey, apiKeysFile: config.apiKeysFile });
  const catalog = config.environmentsFile ? EnvironmentCatalog.load(config.environmentsFile) : undefined;
  checkAllowLists(keys, catalog);
  // one engine, asked once: the rollout service's docker instances and the control plane's containers
  const docker = await answeringDocker({}, 2_000);
  const runtimes = await serviceRuntimes(config.runner, { sbatchArgs: config.sbatchArgs, docker });
  const stores = await openServiceStores(config.db, { queue: Boolean(config.coloniesServerId) }).catch(
    async (err: unknown) => {
      await docker?.close();
      throw err;
    },
  );
  const service = new RolloutService({
    store: stores.instances,
    limits: config.limits,
    runtimes,
    serviceId: config.serviceId,
    maxOutputBytes: config.maxOutputBytes,
    defaultTimeoutS: config.defaultTimeoutS,
    ...(catalog ? { catalog } : {}),
    ...(config.defaultResources ? { defaultResources: config.defaultResources } : {}),
    ...(config.defaultNetwork ? { defaultNetwork: config.defaultNetwork } : {}),
    ...(config.idleTtlS !== undefined ? { idleTtlS: config.idleTtlS } : {}),
  });
  const control = new ControlPlane({
    store: stores.control,
    runtime: docker,
    disksRoot: config.disksDir ?? join(stateDir(), "disks"),
    maxFileBytes: config.maxFileBytes,
    maxContextBytes: config.maxContextBytes,
    defaultNetwork: config.defaultNetwork,
  });
  const colonies =
    stores.queue && config.coloniesServerId
      ? new ColoniesServer({
          store: stores.queue,
          serverId: config.coloniesServerId,
          bearerKey: config.queueKey,
        })
      : undefined;
  const recovered = await service.recover();
  await control.recover();
  service.startIdleReaper();
  colonies?.start();
  const app = buildHttpApp(service, { keys, control, colonies, version: config.version });
  return {
    app,
    recovered,
    close: async ({ stopInstances }) => {
      await app.close();
      await service.shutdown({ stopInstances });
      await control.close();
      await colonies?.close();
      await docker?.close();
      await stores.close();
    },
  };
}

/**
 * Every name in a key's `allow` must exist: a misspelt container type or entry would
 * otherwise deny quietly what the operator meant to allow.
 */
function checkAllowLists(keys: ApiKeys, catalog: EnvironmentCatalog | undefined): void {
  for (const { name, allow } of keys.principals) {
    for (const type of allow?.containerTypes ?? []) {
      if (!(CONTAINER_TYPES as readonly string[]).includes(type))
        throw new ValidationError(
          "--api-keys",
          `${name}: allow.container_types names ${type}; known: ${CONTAINER_TYPES.join(", ")}`,
        );
    }
    for (const entry of allow?.environments ?? []) {
      if (!catalog?.names.includes(entry))
        throw new ValidationError(
          "--api-keys",
          `${name}: allow.environments names ${entry}, which ${catalog ? "--environments does not define" : "needs --environments"}`,
        );
    }
  }
}
