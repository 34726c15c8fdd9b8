import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { PassThrough, Readable } from "node:stream";
import type { z } from "zod";
import type { ControlPlane } from "./control-plane.js";
import {
  AbortedError,
  AffinetesError,
  BuildError,
  ConflictError,
  NotFoundError,
  PayloadTooLargeError,
  PermissionDeniedError,
  RuntimeUnavailableError,
  UnauthenticatedError,
  UnsupportedError,
  ValidationError,
} from "../errors.js";
import { drainable } from "../transport/refused-body.js";
import { parseOptions } from "../util/validate.js";
import type { ContainerStatusFilter } from "./control-schemas.js";
import {
  containerFilterQuery,
  containerIdSchema,
  containerSchema,
  createDiskSchema,
  deleteQuery,
  diskRefSchema,
  imageHashSchema,
  logsQuery,
  parseGrants,
  pathQuery,
} from "./control-schemas.js";

/** Cap of a JSON body under `/v1/` (uploads have their own, larger caps). */
const JSON_BODY_LIMIT = 1024 * 1024;

/** The control plane's REST API under `/v1/`: errors as `{error: {code, message}}`. */
export function registerControlRoutes(app: FastifyInstance, control: ControlPlane): void {
  app.register(
    async (v1) => {
      v1.addHook("onRoute", (route) => {
        route.bodyLimit ??= JSON_BODY_LIMIT;
      });
      v1.setErrorHandler(async (error, request, reply) => {
        const [status, code] = statusOf(error);
        if (!request.raw.complete && !drainable(request)) reply.header("connection", "close");
        await reply.code(status).send({ error: { code, message: (error as Error).message } });
      });
      v1.setNotFoundHandler(async (request, reply) => {
        await reply.code(404).send({
          error: { code: "NOT_FOUND", message: `No route ${request.method} ${request.url.split("?")[0]}` },
        });
      });
      // file uploads arrive as a stream, written (capped) as they come
      v1.addContentTypeParser(["application/octet-stream", "application/x-tar"], (_request, payload, done) =>
        done(null, payload),
      );

      v1.get("/whoami", async (request) => {
        noQuery(request);
        return control.whoami(request.principal);
      });

      v1.post("/disks", async (request, reply) => {
        const body = parseOptions(createDiskSchema, request.body, "body");
        return reply.code(201).send(await control.disks.create(request.principal, body.name));
      });
      v1.get("/disks", async (request) => {
        noQuery(request);
        return { disks: await control.disks.list(request.principal) };
      });
      v1.get("/disks/:id", async (request) => control.disks.get(request.principal, diskOf(request)));
      v1.delete("/disks/:id", async (request, reply) => {
        const query = parseOptions(deleteQuery, request.query, "query");
        await control.disks.delete(request.principal, diskOf(request), { force: query.force === "true" });
        return reply.code(204).send();
      });
      v1.put("/disks/:id/users", async (request) =>
        control.disks.setUsers(request.principal, diskOf(request), parseGrants(request.body)),
      );
      v1.get("/disks/:id/files", async (request) => {
        const { path } = parseOptions(pathQuery, request.query, "query");
        return { path, entries: await control.disks.readDirectory(request.principal, diskOf(request), path) };
      });
      v1.get("/disks/:id/files/content", async (request, reply) => {
        const { path } = parseOptions(pathQuery, request.query, "query");
        const file = await control.disks.readFile(request.principal, diskOf(request), path);
        return reply.type("application/octet-stream").header("content-length", file.size).send(file.stream);
      });
      v1.put("/disks/:id/files/content", async (request) => {
        const { path } = parseOptions(pathQuery, request.query, "query");
        const body = upload(request, "the file", control.disks.maxFileBytes);
        return { path, size: await control.disks.writeFile(request.principal, diskOf(request), path, body) };
      });
      v1.delete("/disks/:id/files", async (request) => {
        const { path } = parseOptions(pathQuery, request.query, "query");
        return { path, deleted: await control.disks.deleteFile(request.principal, diskOf(request), path) };
      });

      v1.get("/images/:id", async (request) => {
        noQuery(request);
        const hash = param(request, imageHashSchema);
        const image = await control.images.get(hash);
        if (!image) throw new NotFoundError("image", hash, `No image of content hash ${hash}`);
        return image;
      });
      v1.put("/images/:id", async (request, reply) => {
        noQuery(request);
        const hash = param(request, imageHashSchema);
        const body = upload(request, "the build context", control.images.maxContextBytes);
        return reply.code(201).send(await control.images.build(hash, body));
      });

      v1.post("/containers", async (request, reply) => {
        const body = parseOptions(containerSchema, request.body, "body");
        return reply.code(201).send(await control.containers.create(request.principal, body));
      });
      v1.get("/containers", async (request) => ({
        containers: await control.containers.list(request.principal, containerFilter(request)),
      }));
      v1.get("/containers/:id", async (request) =>
        control.containers.get(request.principal, param(request, containerIdSchema)),
      );
      v1.post("/containers/:id/stop", async (request) =>
        control.containers.stop(request.principal, param(request, containerIdSchema)),
      );
      v1.delete("/containers/:id", async (request, reply) => {
        await control.containers.delete(request.principal, param(request, containerIdSchema));
        return reply.code(204).send();
      });
      v1.post("/containers/:id/wait", async (request) => {
        const aborted = abortOnClose(request);
        return control.containers.wait(request.principal, param(request, containerIdSchema), {
          signal: aborted.signal,
        });
      });
      v1.get("/containers/:id/logs", async (request, reply) => streamLogs(control, request, reply));
    },
    { prefix: "/v1" },
  );
}

async function streamLogs(control: ControlPlane, request: FastifyRequest, reply: FastifyReply) {
  const query = parseOptions(logsQuery, request.query, "query");
  const aborted = abortOnClose(request);
  const chunks = await control.containers.logs(request.principal, param(request, containerIdSchema), {
    follow: query.follow === "true",
    ...(query.tail !== undefined ? { tail: query.tail } : {}),
    signal: aborted.signal,
  });
  // streamed as written: a client following the logs sees each line as it comes
  return reply.type("text/plain; charset=utf-8").send(Readable.from(chunks));
}

/**
 * An upload's body, refused at once when its announced length passes `maxBytes` (the
 * consumer caps what is actually sent). The consumer reads a pass-through, so giving up
 * early leaves the request to the server, which answers and then closes the connection.
 */
function upload(request: FastifyRequest, what: string, maxBytes: number): AsyncIterable<Uint8Array> {
  if (!(request.body instanceof Readable))
    throw new ValidationError(
      "content-type",
      `send ${what} as application/octet-stream or application/x-tar`,
    );
  const announced = Number(request.headers["content-length"]);
  if (Number.isFinite(announced) && announced > maxBytes) throw new PayloadTooLargeError(what, maxBytes);
  const body = request.body;
  const out = new PassThrough();
  body.once("error", (err) => out.destroy(err));
  // a client gone before the end fails the upload, rather than leaving it waiting for the rest
  body.once("close", () => {
    if (!body.readableEnded) out.destroy(new AbortedError(`receiving ${what} (the client went away)`));
  });
  return body.pipe(out);
}

/** Aborted when the client goes away (a follower that hung up, a waiter that gave up). */
function abortOnClose(request: FastifyRequest): AbortController {
  const controller = new AbortController();
  request.raw.once("close", () => controller.abort());
  return controller;
}

function param<S extends z.ZodType<string>>(request: FastifyRequest, schema: S): z.output<S> {
  return parseOptions(schema, (request.params as { id: string }).id, "id");
}

function diskOf(request: FastifyRequest): string {
  return param(request, diskRefSchema);
}

/** Routes that take no query refuse one rather than ignore it. */
function noQuery(request: FastifyRequest): void {
  const keys = Object.keys(request.query as object);
  if (keys.length) throw new ValidationError(keys[0] ?? "", "unknown option in query");
}

/** `?status=running&disk=disk_x&metadata.exp=1` → a container filter. */
function containerFilter(request: FastifyRequest) {
  const query = parseOptions(containerFilterQuery, request.query, "query");
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(query)) {
    if (key.startsWith("metadata.")) metadata[key.slice("metadata.".length)] = value;
  }
  return {
    ...(query.status !== undefined ? { status: query.status as ContainerStatusFilter } : {}),
    ...(query.disk !== undefined ? { diskId: query.disk } : {}),
    ...(Object.keys(metadata).length ? { metadata } : {}),
  };
}

/** The one table from errors to the control plane's HTTP answers. */
function statusOf(error: unknown): [number, string] {
  if (error instanceof ValidationError) return [400, error.code];
  if (error instanceof UnsupportedError) return [400, error.code];
  if (error instanceof UnauthenticatedError) return [401, error.code];
  if (error instanceof PermissionDeniedError) return [403, error.code];
  if (error instanceof NotFoundError) return [404, error.code];
  if (error instanceof ConflictError) return [409, error.code];
  if (error instanceof PayloadTooLargeError) return [413, error.code];
  if (error instanceof RuntimeUnavailableError) return [503, error.code];
  if (error instanceof BuildError) return [422, error.code];
  const status = (error as { statusCode?: number }).statusCode; // fastify's own (malformed JSON, body too large)
  if (status === 413) return [413, "PAYLOAD_TOO_LARGE"];
  if (status === 415) return [415, "UNSUPPORTED_MEDIA_TYPE"];
  if (status && status >= 400 && status < 500) return [status, "BAD_REQUEST"];
  return [500, error instanceof AffinetesError ? error.code : "INTERNAL"];
}
