import Docker from "dockerode";
import { Host } from "../../host/host.js";
import { SshDockerAgent } from "../../host/ssh-docker-agent.js";
import type { HostOptions } from "../../host/ssh-connection.js";
import { RuntimeUnavailableError } from "../../errors.js";

/**
 * Where a Docker engine answers: a unix socket or a tcp address. Plain data, so it can
 * be handed to the exit-time reaper process.
 */
export type DockerConnection =
  | { socketPath: string }
  | { host: string; port: number; protocol: "http" | "https" }
  | { ssh: string; sshOptions?: HostOptions };

const DEFAULT_SOCKET = "/var/run/docker.sock";

/** The connection named by `DOCKER_HOST` (unix:// or tcp://), else the default socket. */
export function connectionFromEnv(dockerHost = process.env.DOCKER_HOST): DockerConnection {
  if (!dockerHost) return { socketPath: DEFAULT_SOCKET };
  if (dockerHost.startsWith("unix://")) return { socketPath: dockerHost.slice("unix://".length) };
  const url = new URL(dockerHost.replace(/^tcp:/, process.env.DOCKER_TLS_VERIFY ? "https:" : "http:"));
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new RuntimeUnavailableError(
      "docker",
      `unsupported DOCKER_HOST ${dockerHost} (use unix:// or tcp://)`,
    );
  }
  return {
    host: url.hostname,
    port: Number(url.port || (url.protocol === "https:" ? 2376 : 2375)),
    protocol: url.protocol === "https:" ? "https" : "http",
  };
}

/** A Docker engine client, and the SSH host it goes through (if any), to release when done. */
export interface DockerEngine {
  docker: Docker;
  /** The host behind a remote engine (a handle on its shared connection); undefined for a local or tcp engine. */
  sshHost: Host | undefined;
  /** `localhost`, or the host's `ssh://user@host:port`. */
  label: string;
  release(): void;
}

/** A client for a connection: over the host's shared SSH connection for `{ ssh }`. */
export function openEngine(connection: DockerConnection): DockerEngine {
  if ("ssh" in connection) {
    const sshHost = Host.shared(connection.ssh, connection.sshOptions);
    // docker-modem passes `agent` through to every request (not in the typings).
    const options = { protocol: "http", host: "docker", port: 80, agent: new SshDockerAgent(sshHost) };
    const docker = new Docker(options as Docker.DockerOptions);
    return { docker, sshHost, label: sshHost.label, release: () => sshHost.close() };
  }
  return { docker: new Docker(connection), sshHost: undefined, label: "localhost", release: () => {} };
}

/** A dockerode client for a connection (see `openEngine` to release an SSH host). */
export function dockerClient(connection: DockerConnection): Docker {
  return openEngine(connection).docker;
}

/** Whether containers' bridge addresses are reachable from here: a local engine on Linux. */
export function bridgeIsReachable(connection: DockerConnection): boolean {
  return process.platform === "linux" && "socketPath" in connection;
}

/** Resolves when the engine answers `/_ping`, else throws `RuntimeUnavailableError`. */
export async function pingDocker(docker: Docker, timeoutMs = 2_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      docker.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    throw new RuntimeUnavailableError(
      "docker",
      `the Docker engine does not answer (${(err as Error).message})`,
      {
        cause: err,
      },
    );
  } finally {
    clearTimeout(timer);
  }
}
