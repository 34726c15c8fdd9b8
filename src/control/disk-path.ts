import { ValidationError } from "../errors.js";

/** Longest path a client may give inside a disk (Linux's PATH_MAX). */
export const MAX_DISK_PATH = 4096;
/** Longest name of one entry, in bytes (Linux's NAME_MAX). */
const MAX_NAME_BYTES = 255;

/**
 * A client's path inside a disk as its components: `/a//b/./c` → `["a", "b", "c"]`, `/`
 * → `[]`. `..` is refused rather than resolved (a path means the same thing whatever is
 * on the disk), and so are NUL and over-long names.
 */
export function diskPathParts(path: string): string[] {
  if (path.length > MAX_DISK_PATH)
    throw new ValidationError("path", `longer than ${MAX_DISK_PATH} characters`);
  if (path.includes("\0")) throw new ValidationError("path", "must not contain NUL");
  const parts = path.split("/").filter((part) => part !== "" && part !== ".");
  for (const part of parts) {
    if (part === "..") throw new ValidationError("path", `${path} leaves the disk ('..' is not allowed)`);
    if (Buffer.byteLength(part) > MAX_NAME_BYTES)
      throw new ValidationError(
        "path",
        `a name longer than ${MAX_NAME_BYTES} bytes: ${part.slice(0, 40)}...`,
      );
  }
  return parts;
}
