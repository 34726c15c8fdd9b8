import Fastify from "fastify";
import type { FastifyInstance, FastifyReply } from "fastify";
import type { ControlPlane } from "../control/control-plane.js";
import type { Principal } from "../auth/principals.js";
import { ApiKeys } from "../auth/principals.js";
import type { ColoniesServer } from "../queue/colonies-server.js";
import { registerColoniesRoutes } from "../queue/colonies-routes.js";
import { registerControlRoutes } from "../control/control-routes.js";
import { drainRefusedBodies } from "../transport/refused-body.js";
import { openApiDocument } from "./openapi.js";
import { answerRolloutError, registerRolloutRoutes } from "../rollout/rollout-routes.js";
import type { RolloutService } from "../rollout/rollout-service.js";

export interface HttpAppOptions {
  /** When set, every request needs `Authorization: Bearer <apiKey>` (the admin's key). */
  apiKey?: string | undefined;
  /** Every key the service accepts and whose principal it is (`apiKey` is added as the admin). */
  keys?: ApiKeys;
  /** The control plane, served under `/v1/`. */
  control?: ControlPlane | undefined;
  /** The process queue on the ColonyOS protocol, served at `POST /api`. */
  colonies?: ColoniesServer | undefined;
  /** The version the OpenAPI document names. */
  version?: string;
}

declare module "fastify" {
  interface FastifyRequest {
    /** Who the request acts for (set by the authentication hook). */
    principal: Principal;
  }
}

/**
 * The service's one fastify server: authentication (API keys to principals), then each
 * face's routes: the rollout service at the root, the control plane under `/v1/`, the
 * process queue at `/api` and `/pubsub`.
 */
export function buildHttpApp(service: RolloutService, options: HttpAppOptions = {}): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: 16 * 1024 * 1024,
    // A request must arrive whole within this time (head and body; answers and long polls
    // are not bounded by it): a client that trickles bytes, or keeps sending after a 413,
    // cannot hold a connection forever. Generous: a 1 GiB disk upload at 2 MB/s fits.
    requestTimeout: 15 * 60_000,
    // a disk named `owner/name` in a path: a principal's name and a disk's, with room to spare
    routerOptions: { maxParamLength: 512 },
    // a malformed URL or an over-long parameter, answered in the face's own error shape
    frameworkErrors: (error, request, reply) => {
      const body = request.url.startsWith("/v1/")
        ? { error: { code: "BAD_REQUEST", message: error.message } }
        : { detail: error.message };
      void (reply as FastifyReply).code(error.statusCode ?? 400).send(body);
    },
  });
  const keys = options.keys ?? ApiKeys.load({ apiKey: options.apiKey });

  // null, then set per request: fastify refuses a shared object as a request decoration
  app.decorateRequest("principal", null as unknown as Principal);
  app.addHook("onRequest", async (request, reply) => {
    // ColonyOS calls are signed: the signature, not a bearer key, says who calls
    if (options.colonies && ["/api", "/pubsub"].includes(request.url.split("?")[0] ?? "")) return;
    const principal = keys.authenticate(request.headers.authorization);
    if (principal) {
      request.principal = principal;
      return;
    }
    const message = "Unauthorized: send Authorization: Bearer <api key>";
    await reply
      .code(401)
      .send(
        request.url.startsWith("/v1/")
          ? { error: { code: "UNAUTHENTICATED", message } }
          : { detail: message },
      );
  });
  drainRefusedBodies(app);
  if (options.control) registerControlRoutes(app, options.control);
  if (options.colonies) registerColoniesRoutes(app, options.colonies);

  app.setErrorHandler(answerRolloutError);

  app.get("/health", async () => ({ status: "ok" }));
  const openapi = openApiDocument(options.version ?? "0.0.0");
  app.get("/openapi.json", async () => openapi);
  registerRolloutRoutes(app, service);
  return app;
}
