import type { Principal } from "../auth/principals.js";
import { RuntimeUnavailableError } from "../errors.js";
import type { NetworkPolicy } from "../runtime/network-policy.js";
import type { Runtime } from "../runtime/runtime.js";
import type { RuntimeImages } from "../runtime/runtime-images.js";
import { ControlContainers } from "./control-containers.js";
import { ControlDisks } from "./control-disks.js";
import { ControlImages } from "./control-images.js";
import type { ControlStore } from "./control-store.js";

export type { ContainerRequest } from "./container-request.js";
export { CONTAINER_LABEL } from "./container-request.js";
export { DEFAULT_MAX_CONTEXT_BYTES } from "./control-images.js";
export type { ContainerView, DiskView } from "./control-views.js";
export { DEFAULT_DISK_PATH, DISK_ID } from "./control-views.js";

export interface ControlPlaneOptions {
  store: ControlStore;
  /** The runtime running containers and building images; undefined: both are refused with the reason. */
  runtime: Runtime | undefined;
  /** Where local disks keep their folders. */
  disksRoot: string;
  /** Cap of one uploaded file; default 1 GiB. */
  maxFileBytes?: number | undefined;
  /** Cap of an uploaded image build context; default 512 MiB. */
  maxContextBytes?: number | undefined;
  /** The network policy of containers that give none; default `"full"`. */
  defaultNetwork?: NetworkPolicy | undefined;
}

/**
 * The control plane's logic, without HTTP, in three parts on the runtime contract: disks
 * (folders on the server host, per-principal access), containers (the runtime's tasks,
 * mounting disks) and images (built on the runtime's host).
 */
export class ControlPlane {
  readonly disks: ControlDisks;
  readonly containers: ControlContainers;
  readonly images: ControlImages;

  constructor(options: ControlPlaneOptions) {
    this.disks = new ControlDisks({
      store: options.store,
      disksRoot: options.disksRoot,
      maxFileBytes: options.maxFileBytes,
      stopContainer: (id) => this.containers.stop("admin", id),
    });
    this.containers = new ControlContainers({
      store: options.store,
      runtime: options.runtime,
      disks: this.disks,
      defaultNetwork: options.defaultNetwork,
    });
    this.images = new ControlImages(() => imagesOf(options.runtime), options.maxContextBytes);
  }

  /** Who `principal` is, as the service knows it (clients check whose disk they adopt). */
  whoami(principal: Principal): { name: string; admin: boolean } {
    return { name: principal.name, admin: principal.admin };
  }

  /** After a (re)start: containers are watched again, or marked with how they ended meanwhile. */
  recover(): Promise<void> {
    return this.containers.recover();
  }

  /** Stops watching containers; they keep running (the service owns them across restarts). */
  close(): Promise<void> {
    return this.containers.close();
  }
}

function imagesOf(runtime: Runtime | undefined): RuntimeImages {
  if (!runtime?.images)
    throw new RuntimeUnavailableError(
      "docker",
      "no Docker engine answers on this server: containers cannot run",
    );
  return runtime.images;
}
