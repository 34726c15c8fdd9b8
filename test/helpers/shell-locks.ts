import { rmSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * This machine's ~/.bashrc runs `pyenv rehash` in every SSH session, under a lock file. A
 * session killed mid-rehash (the tests' failure drills, a job or command killed as it logs
 * in) leaves the lock behind, and every later login then waits 60 s for it before going
 * on. A live rehash holds it for well under a second: one older than `maxAgeMs` is stale,
 * and is removed. Nothing to do on a machine without pyenv.
 */
export function clearStaleShellLocks(maxAgeMs = 3_000): void {
  const lock = join(homedir(), ".pyenv", "shims", ".pyenv-shim");
  try {
    if (Date.now() - statSync(lock).mtimeMs > maxAgeMs) rmSync(lock, { force: true });
  } catch {
    // no lock
  }
}
