import { posix } from "node:path";
import { ValidationError } from "../../errors.js";

/** Where a confined sandbox sees its own working folder (the only writable one besides /tmp). */
export const SANDBOX_WORKDIR = "/workspace";

/**
 * A working directory given for a confined sandbox, as a path inside it: a relative path
 * is taken from `base` (itself inside the working folder), an absolute one must lie in
 * the working folder. Anything else — the host's `/`, `..` climbing out — is refused:
 * a sandbox never gets a host folder by naming it.
 */
export function sandboxCwd(given: string, base: string, option: string): string {
  if (given.includes("\0")) throw new ValidationError(option, "a path holds no NUL bytes");
  const path = posix
    .normalize(posix.isAbsolute(given) ? given : posix.join(base, given))
    .replace(/(.)\/$/, "$1");
  if (path !== SANDBOX_WORKDIR && !path.startsWith(`${SANDBOX_WORKDIR}/`)) {
    throw new ValidationError(
      option,
      `a confined sandbox works inside its own folder: give a relative path or one under ${SANDBOX_WORKDIR} (got ${JSON.stringify(given)})`,
    );
  }
  return path;
}

/** The part of an inside path below the working folder ("" for the folder itself). */
export function relativeToWorkdir(path: string): string {
  return posix.relative(SANDBOX_WORKDIR, path);
}
