import type Docker from "dockerode";
import type { Host } from "../../host/host.js";
import type { Tunnel } from "../../host/tunnel.js";
import { openTunnel } from "../../host/tunnel.js";
import { SERVER_PORT } from "../../config.js";
import type { AddressMode } from "./container-endpoint.js";
import { containerEndpoint } from "./container-endpoint.js";

/**
 * How this client reaches one container's server: its bridge address, a port published
 * on 127.0.0.1, or (remote engines) a tunnel over the host's SSH connection.
 */
export interface ContainerReach {
  /** The URL for the container as inspected now; a changed address gets a new route. */
  open(info: Docker.ContainerInspectInfo): Promise<string>;
  /** Releases the route (closes a tunnel). */
  close(): Promise<void>;
}

/** A shell sandbox runs no server: nothing to reach. */
export const noReach: ContainerReach = { open: async () => "", close: async () => {} };

export function directReach(mode: AddressMode): ContainerReach {
  return { open: async (info) => containerEndpoint(info, mode), close: async () => {} };
}

/** A tunnel to the container's bridge address on the remote host; nothing is published there. */
export function tunnelReach(host: Host): ContainerReach {
  let tunnel: Tunnel | undefined;
  let target: string | undefined;
  return {
    async open(info) {
      const url = new URL(containerEndpoint(info, "container-ip"));
      if (tunnel && target === url.hostname) return tunnel.url;
      await tunnel?.close();
      target = url.hostname;
      tunnel = await openTunnel(host, url.hostname, Number(url.port || SERVER_PORT));
      return tunnel.url;
    },
    async close() {
      await tunnel?.close();
      tunnel = undefined;
    },
  };
}
