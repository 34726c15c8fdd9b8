import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";

/**
 * Where launchers look for the host's tools: the system folders, then this process's own
 * `PATH` (the operator's, read once; never a request's). A launcher always runs from the
 * absolute path found here, so no variable a sandbox's user sets can swap the binary.
 */
const SYSTEM_FOLDERS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** The PATH the launchers themselves run with: system folders only. */
export const LAUNCHER_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

/** The absolute path of `name` (already absolute: itself when executable), or undefined when it is nowhere. */
export function systemTool(name: string): string | undefined {
  if (isAbsolute(name)) return isExecutable(name) ? name : undefined;
  if (name.includes("/")) return undefined; // relative paths would follow the current folder
  const own = (process.env.PATH ?? "").split(delimiter).filter((dir) => isAbsolute(dir));
  for (const dir of [...SYSTEM_FOLDERS, ...own]) {
    const path = join(dir, name);
    if (isExecutable(path)) return path;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
