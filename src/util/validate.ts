import type { z } from "zod";
import { ValidationError } from "../errors.js";

/**
 * Parses `input` with a zod schema; the first problem becomes a `ValidationError` that
 * names the option (dotted path) and says what was expected.
 */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (issue?.code === "unrecognized_keys") {
    const key = [...issue.path.map(String), issue.keys[0] ?? ""].join(".");
    throw new ValidationError(key, `unknown option in ${what}`);
  }
  const path = issue?.path.map(String).join(".") ?? "";
  const message = issue?.message ?? "invalid";
  if (!path) throw new ValidationError("", `Invalid ${what}: ${message}`);
  throw new ValidationError(path, message);
}
