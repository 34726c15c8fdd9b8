import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Readable } from "node:stream";
import { z } from "zod";
import type { ControlPlane } from "../control/control-plane.js";
import {
  AffinetesError,
  BuildError,
  ConflictError,
  NotFoundError,
  PermissionDeniedError,
  RuntimeUnavailableError,
  UnauthenticatedError,
  ValidationError,
} from "../errors.js";
import { imageRefSchema } from "../image/image-ref.js";
import { parseOptions } from "../util/validate.js";

const name = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "letters, digits, '_', '.', '-'");
const absolutePath = z.string().regex(/^\/\S*$/, "an absolute path inside the container");
const envRecord = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "variable names"), z.string());

const createDiskSchema = z.strictObject({ name });
const usersSchema = z.strictObject({ users: z.record(z.string().min(1), z.enum(["read", "write"])) });
const pathQuery = z.strictObject({ path: z.string().min(1).default("/") });
const deleteQuery = z.strictObject({ force: z.enum(["true", "false"]).optional() });
const containerSchema = z.strictObject({
  disk: z.string().min(1).optional(),
  diskPath: absolutePath.optional(),
  volumes: z
    .record(absolutePath, z.strictObject({ disk: z.string().min(1), readOnly: z.boolean().optional() }))
    .optional(),
  image: imageRefSchema,
  command: z.string().min(1).optional(),
  initScript: z.string().min(1).optional(),
  env: envRecord.optional(),
  metadata: z.record(z.string().min(1).max(100), z.string().max(1000)).optional(),
  vcpuCount: z.number().positive().max(1024).optional(),
  memSizeMiB: z.number().int().min(6).optional(),
  ports: z.array(z.number().int().min(1).max(65535)).max(20).optional(),
});
const logsQuery = z.strictObject({
  follow: z.enum(["true", "false"]).optional(),
  tail: z.coerce.number().int().nonnegative().optional(),
});

/** The control plane's REST API under `/v1/`: errors as `{error: {code, message}}`. */
export function registerControlRoutes(app: FastifyInstance, control: ControlPlane): void {
  app.register(
    async (v1) => {
      v1.setErrorHandler(async (error, _request, reply) => {
        const [status, code] = statusOf(error);
        await reply.code(status).send({ error: { code, message: (error as Error).message } });
      });
      // file uploads arrive as a stream, written to the disk as they come
      v1.addContentTypeParser(["application/octet-stream", "application/x-tar"], (_request, payload, done) =>
        done(null, payload),
      );

      v1.post("/disks", async (request, reply) => {
        const body = parseOptions(createDiskSchema, request.body, "body");
        return reply.code(201).send(await control.createDisk(request.principal, body.name));
      });
      v1.get("/disks", async (request) => ({ disks: await control.listDisks(request.principal) }));
      v1.get("/disks/:id", async (request) => control.getDisk(request.principal, idOf(request)));
      v1.delete("/disks/:id", async (request, reply) => {
        const query = parseOptions(deleteQuery, request.query, "query");
        await control.deleteDisk(request.principal, idOf(request), { force: query.force === "true" });
        return reply.code(204).send();
      });
      v1.put("/disks/:id/users", async (request) =>
        control.setDiskUsers(
          request.principal,
          idOf(request),
          parseOptions(usersSchema, request.body, "body").users,
        ),
      );
      v1.get("/disks/:id/files", async (request) => {
        const { path } = parseOptions(pathQuery, request.query, "query");
        return { path, entries: await control.readDirectory(request.principal, idOf(request), path) };
      });
      v1.get("/disks/:id/files/content", async (request, reply) => {
        const { path } = parseOptions(pathQuery, request.query, "query");
        const file = await control.readFile(request.principal, idOf(request), path);
        return reply.type("application/octet-stream").header("content-length", file.size).send(file.stream);
      });
      v1.put("/disks/:id/files/content", async (request) => {
        const { path } = parseOptions(pathQuery, request.query, "query");
        if (!(request.body instanceof Readable))
          throw new ValidationError("content-type", "send the file as application/octet-stream");
        return { path, size: await control.writeFile(request.principal, idOf(request), path, request.body) };
      });

      v1.delete("/disks/:id/files", async (request) => {
        const { path } = parseOptions(pathQuery, request.query, "query");
        return { path, deleted: await control.deleteFile(request.principal, idOf(request), path) };
      });

      v1.get("/images/:id", async (request) => {
        const image = await control.image(idOf(request));
        if (!image)
          throw new NotFoundError("image", idOf(request), `No image of content hash ${idOf(request)}`);
        return image;
      });
      v1.put("/images/:id", async (request, reply) => {
        if (!(request.body instanceof Readable))
          throw new ValidationError("content-type", "send the build context as application/x-tar");
        return reply.code(201).send(await control.buildImage(idOf(request), request.body));
      });

      v1.post("/containers", async (request, reply) => {
        const body = parseOptions(containerSchema, request.body, "body");
        return reply.code(201).send(await control.createContainer(request.principal, body));
      });
      v1.get("/containers", async (request) => ({
        containers: await control.listContainers(request.principal, containerFilter(request)),
      }));
      v1.get("/containers/:id", async (request) => control.getContainer(request.principal, idOf(request)));
      v1.post("/containers/:id/stop", async (request) =>
        control.stopContainer(request.principal, idOf(request)),
      );
      v1.delete("/containers/:id", async (request, reply) => {
        await control.deleteContainer(request.principal, idOf(request));
        return reply.code(204).send();
      });
      v1.post("/containers/:id/wait", async (request) => {
        const aborted = abortOnClose(request);
        return control.wait(request.principal, idOf(request), { signal: aborted.signal });
      });
      v1.get("/containers/:id/logs", async (request, reply) => streamLogs(control, request, reply));
    },
    { prefix: "/v1" },
  );
}

async function streamLogs(control: ControlPlane, request: FastifyRequest, reply: FastifyReply) {
  const query = parseOptions(logsQuery, request.query, "query");
  const aborted = abortOnClose(request);
  const chunks = await control.logs(request.principal, idOf(request), {
    follow: query.follow === "true",
    ...(query.tail !== undefined ? { tail: query.tail } : {}),
    signal: aborted.signal,
  });
  // streamed as written: a client following the logs sees each line as it comes
  return reply.type("text/plain; charset=utf-8").send(Readable.from(chunks));
}

/** Aborted when the client goes away (a follower that hung up, a waiter that gave up). */
function abortOnClose(request: FastifyRequest): AbortController {
  const controller = new AbortController();
  request.raw.once("close", () => controller.abort());
  return controller;
}

function idOf(request: FastifyRequest): string {
  return (request.params as { id: string }).id;
}

/** `?status=running&disk=disk_x&metadata.exp=1` → a container filter. */
function containerFilter(request: FastifyRequest) {
  const query = request.query as Record<string, string>;
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(query)) {
    if (key.startsWith("metadata.")) metadata[key.slice("metadata.".length)] = value;
    else if (key !== "status" && key !== "disk") throw new ValidationError(key, "unknown filter");
  }
  const status = query.status;
  if (status !== undefined && !["creating", "running", "exited", "stopped", "failed"].includes(status))
    throw new ValidationError("status", "one of creating, running, exited, stopped, failed");
  return {
    ...(status !== undefined ? { status: status as "running" } : {}),
    ...(query.disk !== undefined ? { diskId: query.disk } : {}),
    ...(Object.keys(metadata).length ? { metadata } : {}),
  };
}

/** The one table from errors to the control plane's HTTP answers. */
function statusOf(error: unknown): [number, string] {
  if (error instanceof ValidationError) return [400, error.code];
  if (error instanceof UnauthenticatedError) return [401, error.code];
  if (error instanceof PermissionDeniedError) return [403, error.code];
  if (error instanceof NotFoundError) return [404, error.code];
  if (error instanceof ConflictError) return [409, error.code];
  if (error instanceof RuntimeUnavailableError) return [503, error.code];
  if (error instanceof BuildError) return [422, error.code];
  const status = (error as { statusCode?: number }).statusCode; // fastify's own (malformed JSON, body too large)
  if (status && status >= 400 && status < 500) return [status, "BAD_REQUEST"];
  return [500, error instanceof AffinetesError ? error.code : "INTERNAL"];
}
