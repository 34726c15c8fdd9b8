import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
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
import { parseOptions } from "../util/validate.js";
import {
  REQUEST_LIMITS,
  closeSchema,
  executeSchema,
  startSchema,
  statsQuerySchema,
} from "./request-schemas.js";
import type { RolloutService } from "./rollout-service.js";

/**
 * The rollout service's REST routes at the root (`/start_instance`, `/execute_command`,
 * `/close_instance`, `/get_available_resources`, `/stats`), as the Agent Rollout Service
 * names them. Every body is validated; errors are `{detail}` with a status from one table.
 */
export function registerRolloutRoutes(app: FastifyInstance, service: RolloutService): void {
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
}

/** Answers an error of a root route (the rollout routes, `/health`) as `{detail}`. */
export async function answerRolloutError(
  error: unknown,
  _request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  const [status, body] = toHttp(error);
  await reply.code(status).send(body);
}

/** The one table from errors to the rollout routes' HTTP answers. */
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
