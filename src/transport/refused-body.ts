import type { FastifyInstance, FastifyRequest } from "fastify";

/** The most of a refused body read and dropped so that its client hears the answer. */
const MAX_DRAIN_BYTES = 64 * 1024 * 1024;

/**
 * Whether the rest of a request refused before its end may be read and dropped, keeping
 * the connection: not when it announces more than the drain takes (the connection is
 * closed after the answer instead, or the client's next request on it would be read as
 * the rest of this body). A stream of unknown length is drained until it passes the
 * same bound.
 */
export function drainable(request: FastifyRequest): boolean {
  if (request.headers["transfer-encoding"] !== undefined) return true;
  const announced = Number(request.headers["content-length"]);
  return Number.isFinite(announced) && announced <= MAX_DRAIN_BYTES;
}

/**
 * Refused bodies are drained rather than cut: fastify closes the connection on every
 * body it refuses, and a client still writing its body then sees a broken pipe instead of
 * the 413 (or 400) it was sent. What is left of the body is read and dropped, up to
 * `MAX_DRAIN_BYTES`; past that the connection is closed.
 */
export function drainRefusedBodies(app: FastifyInstance): void {
  app.addHook("onSend", async (request, reply) => {
    const raw = request.raw;
    if (reply.statusCode < 400 || raw.complete || raw.destroyed || !drainable(request)) return;
    reply.removeHeader("connection");
    let dropped = 0;
    raw.on("data", (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > MAX_DRAIN_BYTES) raw.socket.destroy();
    });
    raw.resume();
  });
}
