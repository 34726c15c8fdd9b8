import type Docker from "dockerode";
import { SERVER_PORT } from "../../config.js";
import { InfrastructureError } from "../../errors.js";

/** How the client reaches containers: their bridge address, or a port published on 127.0.0.1. */
export type AddressMode = "container-ip" | "published";

export const SERVER_PORT_KEY = `${SERVER_PORT}/tcp`;

/** The URL of the method server of an inspected container. */
export function containerEndpoint(info: Docker.ContainerInspectInfo, mode: AddressMode): string {
  if (mode === "published") {
    const binding = info.NetworkSettings.Ports?.[SERVER_PORT_KEY]?.[0];
    if (!binding?.HostPort) {
      throw new InfrastructureError(`container ${info.Name} has no published port ${SERVER_PORT_KEY}`);
    }
    return `http://127.0.0.1:${binding.HostPort}`;
  }
  const ip = Object.values(info.NetworkSettings.Networks ?? {}).find((n) => n.IPAddress)?.IPAddress;
  if (!ip) {
    throw new InfrastructureError(
      `container ${info.Name} has no IP address (state ${info.State.Status}, network mode ${info.HostConfig.NetworkMode})`,
    );
  }
  return `http://${ip}:${SERVER_PORT}`;
}
