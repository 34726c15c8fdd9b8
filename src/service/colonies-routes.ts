import websocket from "@fastify/websocket";
import type { FastifyInstance } from "fastify";
import type { WebSocket } from "ws";
import type { ColoniesServer } from "../queue/colonies-server.js";
import { RpcError, errorEnvelope, openEnvelope, replyEnvelope } from "../queue/envelope.js";

/**
 * The ColonyOS RPC endpoint, `POST /api`: one signed envelope in, one reply envelope out,
 * errors with their HTTP status and `error: true` (pycolonies looks at the status, the Go
 * client at the flag). Bodies are read whatever their content type (pycolonies sends none).
 */
export function registerColoniesRoutes(app: FastifyInstance, colonies: ColoniesServer): void {
  app.register(async (api) => {
    await api.register(websocket);
    api.get("/pubsub", { websocket: true }, (socket) => servePubsub(socket, colonies));
    api.removeAllContentTypeParsers();
    api.addContentTypeParser("*", { parseAs: "string" }, (_request, body, done) => done(null, body));
    api.post("/api", async (request, reply) => {
      try {
        let envelope: unknown;
        try {
          envelope = JSON.parse(String(request.body ?? ""));
        } catch {
          throw new RpcError(400, "the request body is not JSON");
        }
        const call = openEnvelope(envelope);
        const result = await colonies.handle(call);
        return reply
          .code(200)
          .type("text/plain; charset=utf-8")
          .send(JSON.stringify(replyEnvelope(call.msgtype, result)));
      } catch (err) {
        const status = err instanceof RpcError ? err.status : 500;
        const message = err instanceof Error ? err.message : String(err);
        return reply
          .code(status)
          .type("text/plain; charset=utf-8")
          .send(JSON.stringify(errorEnvelope(status, message)));
      }
    });
  });
}

/**
 * `GET /pubsub`: each text frame is a signed subscription envelope; pushed frames are
 * reply envelopes (`subscribeprocessmsg` for both kinds of process subscription, as
 * ColonyOS sends them; `subscribechannelmsg` with a batch of channel entries).
 * A subscription that times out closes the socket, as ColonyOS does.
 */
function servePubsub(socket: WebSocket, colonies: ColoniesServer): void {
  const stops: Array<() => void> = [];
  const send = (frame: unknown) => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(frame));
  };
  socket.on("message", (data) => {
    void (async () => {
      try {
        const call = openEnvelope(JSON.parse(String(data)));
        stops.push(
          await colonies.subscribe(
            call,
            (payloadtype, payload) => send(replyEnvelope(payloadtype, payload)),
            () => socket.close(),
          ),
        );
      } catch (err) {
        const status = err instanceof RpcError ? err.status : 400;
        send(errorEnvelope(status, err instanceof Error ? err.message : String(err)));
      }
    })();
  });
  socket.on("close", () => {
    for (const stop of stops) stop();
  });
}
