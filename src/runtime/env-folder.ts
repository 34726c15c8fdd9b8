import { readFile, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { ValidationError } from "../errors.js";
import type { EnvType } from "./instance-spec.js";
import { sanitizeName } from "./instance-name.js";

/** What an environment folder holds, as far as building and running it is concerned. */
export interface EnvFolder {
  /** Absolute path of the folder. */
  path: string;
  /** Folder name, used as the default environment name. */
  name: string;
  /** Absolute path of env.py. */
  envFile: string;
  envType: EnvType;
  hasDockerfile: boolean;
  hasRequirements: boolean;
}

/**
 * Reads an environment folder: `env.py` with functions and/or an `Actor` (function-based),
 * or a FastAPI `app` (HTTP-based). The type is detected from the source unless overridden.
 */
export async function readEnvFolder(envPath: string, envType?: EnvType): Promise<EnvFolder> {
  const path = resolve(envPath);
  const info = await stat(path).catch(() => undefined);
  if (!info?.isDirectory()) throw new ValidationError("envPath", `not a directory: ${path}`);
  const envFile = join(path, "env.py");
  const source = await readFile(envFile, "utf8").catch(() => undefined);
  if (source === undefined) throw new ValidationError("envPath", `no env.py in ${path}`);
  return {
    path,
    name: sanitizeName(basename(path)),
    envFile,
    envType: envType ?? detectEnvType(source),
    hasDockerfile: await exists(join(path, "Dockerfile")),
    hasRequirements: await exists(join(path, "requirements.txt")),
  };
}

/** HTTP-based when env.py builds a FastAPI `app`; function-based otherwise. */
export function detectEnvType(source: string): EnvType {
  const importsFastApi = /^\s*(from\s+fastapi\s+import|import\s+fastapi)\b/m.test(source);
  const buildsApp = /^\s*app\s*(:\s*[\w.]+\s*)?=\s*(fastapi\.)?FastAPI\s*\(/m.test(source);
  return importsFastApi && buildsApp ? "http_based" : "function_based";
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
