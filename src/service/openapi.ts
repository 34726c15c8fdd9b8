import { z } from "zod";
import { closeSchema, executeSchema, startSchema } from "../rollout/request-schemas.js";

/** A request body's JSON Schema, as clients send it (before defaults and preprocessing). */
function bodySchema(schema: z.ZodType): Record<string, unknown> {
  return z.toJSONSchema(schema, { io: "input", unrepresentable: "any", target: "openapi-3.0" }) as Record<
    string,
    unknown
  >;
}

const error = {
  description:
    "the error, in `detail` (400 names the invalid `field`; 403: the key may not start this; 429 says what is `short`)",
  content: { "application/json": { schema: { type: "object", properties: { detail: { type: "string" } } } } },
};

const ok = (description: string) => ({
  description,
  content: { "application/json": { schema: { type: "object" } } },
});

/** The start body, with the string form of `environment_config` (a predefined entry's name) the preprocessing hides. */
function startBodySchema(): Record<string, unknown> {
  const schema = bodySchema(startSchema) as { properties: Record<string, unknown> };
  const object = schema.properties.environment_config;
  schema.properties.environment_config = {
    oneOf: [{ type: "string", description: "the name of a predefined environment (--environments)" }, object],
  };
  return schema;
}

function post(summary: string, schema: z.ZodType | Record<string, unknown>, statuses: number[]) {
  return {
    post: {
      summary,
      requestBody: {
        required: true,
        content: {
          "application/json": { schema: schema instanceof z.ZodType ? bodySchema(schema) : schema },
        },
      },
      responses: {
        200: ok("success"),
        ...Object.fromEntries(statuses.map((s) => [s, error])),
      },
    },
  };
}

/**
 * The service's OpenAPI document, generated from the same zod schemas that validate
 * the requests: it cannot drift from what the server accepts.
 */
export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: "3.0.3",
    info: {
      title: "affinetes rollout service",
      version,
      description: "Start instances, run shell commands in them, close them.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    },
    security: [{ bearer: [] }],
    paths: {
      "/start_instance": post(
        "Start an instance (admission-controlled)",
        startBodySchema(),
        [400, 401, 403, 404, 409, 413, 429, 500],
      ),
      "/execute_command": post(
        "Run a shell command; past its timeout, the partial output with timed_out: true",
        executeSchema,
        [400, 401, 404, 410, 413, 500],
      ),
      "/close_instance": post(
        "Stop an instance and free its resources (idempotent; another principal's run is left alone)",
        closeSchema,
        [400, 401, 404, 413],
      ),
      "/get_available_resources": {
        get: { summary: "Remaining amount of each tracked resource", responses: { 200: ok("by key") } },
      },
      "/stats": {
        get: {
          summary: "Server, resources (service-wide) and the caller's instances (the admin's: all)",
          parameters: [
            { name: "run_id", in: "query", schema: { type: "string" } },
            { name: "container_name", in: "query", schema: { type: "string" } },
          ],
          responses: { 200: ok("statistics") },
        },
      },
      "/health": { get: { summary: "Liveness", security: [], responses: { 200: ok("ok") } } },
      "/openapi.json": {
        get: { summary: "This document", security: [], responses: { 200: ok("OpenAPI 3") } },
      },
    },
  };
}
