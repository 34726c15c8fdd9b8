import Fastify from "fastify";
import type { FastifyInstance, FastifyReply } from "fastify";
import {
  AffinetesError,
  ConflictError,
  InstanceGoneError,
  NotFoundError,
  PermissionDeniedError,
  ResourcesExhaustedError,
  UnauthenticatedError,
  UnsupportedError,
  ValidationError,
} from "../errors.js";
import type { ControlPlane } from "../control/control-plane.js";
import type { Principal } from "../control/principals.js";
import { ApiKeys } from "../control/principals.js";
import { parseOptions } from "../util/validate.js";
import type { ColoniesServer } from "../queue/colonies-server.js";
import { registerColoniesRoutes } from "./colonies-routes.js";
import { registerControlRoutes } from "./control-routes.js";
import { drainRefusedBodies } from "./refused-body.js";
import { openApiDocument } from "./openapi.js";
import {
  REQUEST_LIMITS,
  closeSchema,
  executeSchema,
  startSchema,
  statsQuerySchema,
} from "./request-schemas.js";
import type { RolloutService } from "./rollout-service.js";

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
 * The REST face of the service (fastify): the rollout service at the root, the control
 * plane under `/v1/`. Every body is validated; errors map to statuses in one table.
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

  app.setErrorHandler(async (error, _request, reply) => {
    const [status, body] = toHttp(error);
    await reply.code(status).send(body);
  });

  app.get("/health", async () => ({ status: "ok" }));
  const openapi = openApiDocument(options.version ?? "0.0.0");
  app.get("/openapi.json", async () => openapi);
  // A rollout body is small (a command, a few variables): a larger one is refused before it is read whole.
  const rollout = { bodyLimit: REQUEST_LIMITS.maxBodyBytes };
  app.post("/start_instance", rollout, async (request) =>
    service.start(parseOptions(startSchema, request.body, "request body"), request.principal),
  );
  app.post("/execute_command", rollout, async (request) =>
    service.execute(parseOptions(executeSchema, request.body, "request body"), request.principal),
  );
  app.post("/close_instance", rollout, async (request) =>
    service.close(parseOptions(closeSchema, request.body, "request body").run_id, request.principal),
  );
  app.get("/get_available_resources", async () => service.availableResources());
  app.get("/stats", async (request) => {
    const query = parseOptions(statsQuerySchema, request.query, "query");
    return service.stats(
      {
        ...(query.run_id ? { runId: query.run_id } : {}),
        ...(query.container_name ? { containerName: query.container_name } : {}),
      },
      request.principal,
    );
  });
  return app;
}

/** The one table from errors to HTTP answers. */
function toHttp(error: unknown): [number, Record<string, unknown>] {
  if (error instanceof ValidationError) return [400, { detail: error.message, field: error.option }];
  if (error instanceof UnsupportedError) return [400, { detail: error.message }];
  if (error instanceof UnauthenticatedError) return [401, { detail: error.message }];
  if (error instanceof PermissionDeniedError) return [403, { detail: error.message }];
  if (error instanceof NotFoundError) return [404, { detail: error.message }];
  if (error instanceof InstanceGoneError) return [410, { detail: error.message }];
  if (error instanceof ConflictError) return [409, { detail: error.message }];
  if (error instanceof ResourcesExhaustedError) return [429, { detail: error.message, short: error.short }];
  const status = (error as { statusCode?: number }).statusCode; // fastify's own (malformed JSON, body too large)
  if (status && status >= 400 && status < 500) return [status, { detail: (error as Error).message }];
  const code = error instanceof AffinetesError ? error.code : "INTERNAL";
  return [500, { detail: error instanceof Error ? error.message : String(error), code }];
}
