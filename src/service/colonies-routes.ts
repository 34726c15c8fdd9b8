import type { FastifyInstance } from "fastify";
import type { ColoniesServer } from "../queue/colonies-server.js";
import { RpcError, errorEnvelope, openEnvelope, replyEnvelope } from "../queue/envelope.js";

/**
 * The ColonyOS RPC endpoint, `POST /api`: one signed envelope in, one reply envelope out,
 * errors with their HTTP status and `error: true` (pycolonies looks at the status, the Go
 * client at the flag). Bodies are read whatever their content type (pycolonies sends none).
 */
export function registerColoniesRoutes(app: FastifyInstance, colonies: ColoniesServer): void {
  app.register(async (api) => {
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
