import websocket from "@fastify/websocket";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { createHash, timingSafeEqual } from "node:crypto";
import type { WebSocket } from "ws";
import type { ColoniesServer } from "./colonies-server.js";
import { RpcError, errorEnvelope, openEnvelope, replyEnvelope } from "./envelope.js";

/**
 * Bounds of the queue's transport (docs/colonyos-protocol.md §10). A `POST /api` body:
 * ColonyOS sets none; 4 MiB holds a function spec with large kwargs, and a channel
 * message of 2 MiB once base64 twice.
 */
export const MAX_API_BODY_BYTES = 4 * 1024 * 1024;
/** A `/pubsub` frame: a signed subscription is a few hundred bytes. */
export const MAX_PUBSUB_FRAME_BYTES = 64 * 1024;
/**
 * Open `/pubsub` connections per remote address: pycolonies opens one per `wait`, so a
 * client waiting on many processes at once holds many. Behind a reverse proxy every
 * client shares the proxy's address (docs/colonyos-protocol.md §10.4).
 */
export const MAX_PUBSUB_CONNECTIONS_PER_ADDRESS = 64;
/** Open `/pubsub` connections in all: with frames capped, each holds at most 64 KiB of unread frame. */
export const MAX_PUBSUB_CONNECTIONS = 1024;
/** Subscriptions one `/pubsub` connection holds at once. */
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 16;

/**
 * The ColonyOS RPC endpoint, `POST /api`: one signed envelope in, one reply envelope out,
 * errors with their HTTP status and `error: true` (pycolonies looks at the status, the Go
 * client at the flag). Bodies are read whatever their content type (pycolonies sends none).
 * With a bearer key configured, both routes also require `Authorization: Bearer <key>`.
 */
export function registerColoniesRoutes(app: FastifyInstance, colonies: ColoniesServer): void {
  const connections = new Map<string, number>();
  app.register(async (api) => {
    await api.register(websocket, {
      options: { maxPayload: MAX_PUBSUB_FRAME_BYTES },
      // ws has already sent its close frame (1009, "message too big", for an oversized one): let it go out
      errorHandler: (_error, socket) => {
        if (socket.readyState === socket.OPEN) socket.terminate();
      },
    });
    api.setErrorHandler(async (error, _request, reply) => {
      // fastify's own refusals (body too large, unreadable body) as error envelopes
      const code = (error as { statusCode?: number }).statusCode;
      const status = code && code >= 400 && code < 500 ? code : 500;
      await sendError(reply, status, error instanceof Error ? error.message : String(error));
    });
    if (colonies.bearerKey) {
      const expected = digest(colonies.bearerKey);
      api.addHook("onRequest", async (request, reply) => {
        const given = /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1];
        if (given && timingSafeEqual(digest(given), expected)) return;
        await sendError(reply, 401, "Unauthorized: send Authorization: Bearer <queue key>");
      });
    }
    api.get(
      "/pubsub",
      { websocket: true, preValidation: (request, reply) => admit(request, reply, connections) },
      (socket) => servePubsub(socket, colonies),
    );
    api.removeAllContentTypeParsers();
    api.addContentTypeParser("*", { parseAs: "string" }, (_request, body, done) => done(null, body));
    api.post("/api", { bodyLimit: MAX_API_BODY_BYTES }, async (request, reply) => {
      const left = new AbortController();
      // the caller is gone before the answer reached it: an assign gives its process back
      reply.raw.once("close", () => {
        if (!reply.raw.writableFinished) left.abort();
      });
      try {
        let envelope: unknown;
        try {
          envelope = JSON.parse(String(request.body ?? ""));
        } catch {
          throw new RpcError(400, "the request body is not JSON");
        }
        const call = openEnvelope(envelope);
        const result = await colonies.handle(call, { signal: left.signal });
        return reply
          .code(200)
          .type("text/plain; charset=utf-8")
          .send(JSON.stringify(replyEnvelope(call.msgtype, result)));
      } catch (err) {
        const status = err instanceof RpcError ? err.status : 500;
        return sendError(reply, status, err instanceof Error ? err.message : String(err));
      }
    });
  });
}

function sendError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply
    .code(status)
    .type("text/plain; charset=utf-8")
    .send(JSON.stringify(errorEnvelope(status, message)));
}

function digest(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

/** The count of every open `/pubsub` connection, beside the per-address ones (no address is empty). */
const ALL = "";

/**
 * Admits a `/pubsub` connection while its address holds fewer than the bound; the place
 * is held until the TCP connection closes, however the upgrade ends.
 */
async function admit(
  request: FastifyRequest,
  reply: FastifyReply,
  connections: Map<string, number>,
): Promise<void> {
  const address = request.ip;
  if ((connections.get(address) ?? 0) >= MAX_PUBSUB_CONNECTIONS_PER_ADDRESS) {
    await sendError(
      reply,
      429,
      `at most ${MAX_PUBSUB_CONNECTIONS_PER_ADDRESS} /pubsub connections per address`,
    );
    return;
  }
  if ((connections.get(ALL) ?? 0) >= MAX_PUBSUB_CONNECTIONS) {
    await sendError(reply, 429, `at most ${MAX_PUBSUB_CONNECTIONS} /pubsub connections`);
    return;
  }
  const hold = (key: string, delta: number) => {
    const count = (connections.get(key) ?? 0) + delta;
    if (count > 0) connections.set(key, count);
    else connections.delete(key);
  };
  hold(address, 1);
  hold(ALL, 1);
  request.socket.once("close", () => {
    hold(address, -1);
    hold(ALL, -1);
  });
}

/**
 * `GET /pubsub`: each text frame is a signed subscription envelope; pushed frames are
 * reply envelopes (`subscribeprocessmsg` for both kinds of process subscription, as
 * ColonyOS sends them; `subscribechannelmsg` with a batch of channel entries).
 * A subscription that times out closes the socket, as ColonyOS does. Frames are at most
 * 64 KiB (bigger ones close the socket with 1009 before they are read), and a connection
 * holds at most 16 subscriptions.
 */
function servePubsub(socket: WebSocket, colonies: ColoniesServer): void {
  const stops = new Set<() => void>();
  let held = 0;
  let closed = false;
  const send = (frame: unknown) => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(frame));
  };
  const refuse = (status: number, message: string) => send(errorEnvelope(status, message));
  socket.on("message", (data) => {
    if (held >= MAX_SUBSCRIPTIONS_PER_CONNECTION) {
      refuse(429, `at most ${MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions per connection`);
      return;
    }
    held++;
    void (async () => {
      try {
        let envelope: unknown;
        try {
          envelope = JSON.parse(String(data));
        } catch {
          throw new RpcError(400, "the frame is not JSON");
        }
        const stop = await colonies.subscribe(
          openEnvelope(envelope),
          (payloadtype, payload) => send(replyEnvelope(payloadtype, payload)),
          () => socket.close(),
        );
        if (closed) stop();
        else stops.add(stop);
      } catch (err) {
        held--;
        refuse(err instanceof RpcError ? err.status : 400, err instanceof Error ? err.message : String(err));
      }
    })();
  });
  socket.on("close", () => {
    closed = true;
    for (const stop of stops) stop();
    stops.clear();
  });
}
