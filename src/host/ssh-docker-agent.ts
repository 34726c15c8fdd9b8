import { Agent } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Host } from "./host.js";

/**
 * An HTTP agent whose connections are `docker system dial-stdio` channels of one SSH
 * connection (as `docker -H ssh://` does), kept alive between Docker API calls: no SSH
 * handshake per call.
 */
export class SshDockerAgent extends Agent {
  constructor(private readonly host: Host) {
    // idle channels kept for the next call, each holding one of the connection's sessions
    super({ keepAlive: true, maxSockets: 32, maxFreeSockets: 4 });
  }

  override createConnection(
    _options: object,
    callback: (err: Error | null, socket?: Duplex) => void,
  ): undefined {
    this.host.open("docker system dial-stdio").then(
      (channel) => callback(null, asSocket(channel)),
      (err: Error) => callback(err),
    );
    return undefined;
  }
}

/** Node's keep-alive agent calls socket methods a channel lacks; they have nothing to do here. */
function asSocket(channel: Duplex): Socket {
  const socket = channel as Duplex & Partial<Socket>;
  const noop = () => socket as Socket;
  socket.setKeepAlive ??= noop;
  socket.setNoDelay ??= noop;
  socket.ref ??= noop;
  socket.unref ??= noop;
  socket.setTimeout ??= noop as Socket["setTimeout"];
  return socket as Socket;
}
