import { createServer } from "node:net";
import type { AddressInfo, Server, Socket } from "node:net";
import { logger } from "../logger.js";
import type { Host } from "./host.js";

/** A local port that leads, through the host's SSH connection, to an address only the host reaches. */
export interface Tunnel {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Listens on 127.0.0.1 (a free port) and carries each connection over `forwardOut` to
 * `target:port` on the host. Nothing is opened on the remote host; the tunnel survives
 * reconnects of the SSH connection (each new TCP connection asks for a live one).
 */
export async function openTunnel(host: Host, target: string, port: number): Promise<Tunnel> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    host.forwardOut(target, port).then(
      (channel) => {
        socket.pipe(channel).pipe(socket);
        channel.once("close", () => socket.destroy());
        socket.once("close", () => channel.destroy());
        channel.on("error", () => socket.destroy());
        socket.on("error", () => channel.destroy());
      },
      (err: Error) => {
        logger.debug({ host: host.label, target, err: err.message }, "tunnel connection failed");
        socket.destroy(); // the client sees a refused/reset connection: not delivered
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  server.unref(); // a tunnel never keeps the process alive
  const { port: local } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${local}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}
