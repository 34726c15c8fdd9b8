import { z } from "zod";
import { DISK_ID } from "./control-views.js";
import { MAX_DISK_PATH } from "./disk-path.js";
import { imageRefSchema } from "../image/image-ref.js";
import { networkPolicySchema } from "../runtime/network-policy.js";
import { parseOptions } from "../util/validate.js";

/** No NUL nor other control characters: they end strings early in C, the engine and PostgreSQL. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000e-\u001f\u007f]/;

/** A string with no NUL (PostgreSQL refuses it; the engine cuts at it). */
const text = (max: number) =>
  z
    .string()
    .max(max)
    .refine((v) => !v.includes("\0"), "must not contain NUL");
/** One line of printable text. */
const label = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((v) => !CONTROL.test(v) && !/[\r\n\t]/.test(v), "printable characters only");

export const diskNameSchema = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "letters, digits, '_', '.', '-'")
  .refine((v) => !DISK_ID.test(v), "a disk name must not look like a disk id (disk_<16 hex>)");

/** A principal's name, as keys files give them. */
const principalName = label(200);

/** A disk where one is expected: its id, `owner/name`, or a name of the caller's own. */
export const diskRefSchema = label(320);
export const containerIdSchema = z.string().regex(/^ctr_[0-9a-f]{16}$/, "a container id (ctr_<16 hex>)");
export const imageHashSchema = z.string().regex(/^[0-9a-f]{64}$/, "a sha256 in hex (64 characters)");

/** An absolute path inside a container, without `..`: where a disk is mounted. */
const mountPath = z
  .string()
  .max(1024)
  .regex(/^\/\S*$/, "an absolute path inside the container")
  .refine((v) => !v.includes("\0"), "must not contain NUL")
  .refine((v) => !v.split("/").includes(".."), "must not contain '..'")
  .refine((v) => v.replace(/\/+$/, "") !== "", "a disk cannot be mounted at /");

const envName = z
  .string()
  .max(256)
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "variable names");

export const createDiskSchema = z.strictObject({ name: diskNameSchema });
const access = z.enum(["read", "write"]);
const usersSchema = z.strictObject({
  users: z
    .record(principalName, access)
    .refine((users) => Object.keys(users).length <= 1000, "at most 1000 users"),
});

/**
 * The grants of `PUT /v1/disks/:id/users`, read from the body's own keys: zod's records
 * drop a key named `__proto__`, and a principal may be called that.
 */
export function parseGrants(body: unknown): Record<string, "read" | "write"> {
  parseOptions(usersSchema, body, "body");
  const grants: Record<string, "read" | "write"> = {};
  for (const [user, given] of Object.entries((body as { users: object }).users)) {
    const value = parseOptions(access, given, `users.${user}`);
    Object.defineProperty(grants, user, { value, enumerable: true, writable: true, configurable: true });
  }
  return grants;
}
export const pathQuery = z.strictObject({ path: text(MAX_DISK_PATH).pipe(z.string().min(1)).default("/") });
export const deleteQuery = z.strictObject({ force: z.enum(["true", "false"]).optional() });
export const containerSchema = z.strictObject({
  disk: diskRefSchema.optional(),
  diskPath: mountPath.optional(),
  volumes: z
    .record(mountPath, z.strictObject({ disk: diskRefSchema, readOnly: z.boolean().optional() }))
    .refine((v) => Object.keys(v).length <= 32, "at most 32 volumes")
    .optional(),
  image: z.string().max(512).pipe(imageRefSchema),
  command: text(256 * 1024)
    .pipe(z.string().min(1))
    .optional(),
  initScript: text(256 * 1024)
    .pipe(z.string().min(1))
    .optional(),
  env: z
    .record(envName, text(128 * 1024))
    .refine((v) => Object.keys(v).length <= 1000, "at most 1000 variables")
    .optional(),
  metadata: z
    .record(label(100), text(1000))
    .refine((v) => Object.keys(v).length <= 100, "at most 100 entries")
    .optional(),
  vcpuCount: z.number().min(0.01).max(1024).optional(),
  memSizeMiB: z
    .number()
    .int()
    .min(6)
    .max(4 * 2 ** 20)
    .optional(),
  ports: z
    .array(z.number().int().min(1).max(65535))
    .max(20)
    .refine((ports) => new Set(ports).size === ports.length, "each port once")
    .optional(),
  network: networkPolicySchema.optional(),
});
export const logsQuery = z.strictObject({
  follow: z.enum(["true", "false"]).optional(),
  tail: z.coerce.number().int().nonnegative().max(1_000_000).optional(),
});

const statuses = ["creating", "running", "exited", "stopped", "failed"] as const;

/** `?status=running&disk=disk_x&metadata.exp=1`: each given once, as text. */
export const containerFilterQuery = z.record(z.string().max(200), text(1000)).superRefine((query, ctx) => {
  for (const [key, value] of Object.entries(query)) {
    if (key === "status") {
      if (!(statuses as readonly string[]).includes(value))
        ctx.addIssue({ code: "custom", path: [key], message: `one of ${statuses.join(", ")}` });
    } else if (key.startsWith("metadata.")) {
      if (key.length === "metadata.".length)
        ctx.addIssue({ code: "custom", path: [key], message: "name the metadata key" });
    } else if (key !== "disk") ctx.addIssue({ code: "custom", path: [key], message: "unknown filter" });
  }
});
export type ContainerStatusFilter = (typeof statuses)[number];
