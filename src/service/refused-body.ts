import type { FastifyInstance, FastifyRequest } from "fastify";

/** The most of a refused body read and dropped so that its client hears the answer. */
const MAX_DRAIN_BYTES = 64 * 1024 * 1024;

/**
 * Whether the rest of a request refused before its end may be read and dropped, keeping
 * the connection: only a body of announced, bounded length. Anything else (a stream of
 * unknown length, a huge one) closes the connection after the answer, or the client's
 * next request on it would be read as the rest of this body.
 */
export function drainable(request: FastifyRequest): boolean {
  const announced = Number(request.headers["content-length"]);
  return (
    request.headers["transfer-encoding"] === undefined &&
    Number.isFinite(announced) &&
    announced <= MAX_DRAIN_BYTES
  );
}

/**
 * Refused bodies of bounded length are drained rather than cut: fastify closes the
 * connection on every body it refuses, and a client still writing its body then sees a
 * broken pipe instead of the 413 (or 400) it was sent. Node reads and drops what is left
 * once the answer is out.
 */
export function drainRefusedBodies(app: FastifyInstance): void {
  app.addHook("onSend", async (request, reply) => {
    if (reply.statusCode >= 400 && !request.raw.complete && drainable(request)) {
      reply.removeHeader("connection");
    }
  });
}
