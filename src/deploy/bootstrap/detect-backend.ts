import { posix } from "node:path";
import type { Host } from "../../host/host.js";
import type { BackendName } from "./bootstrap-backend.js";
import { Deadline } from "../../util/deadline.js";
import { resolveWorkspace } from "./prepare-workspace.js";
import { declaresProject } from "./python-project.js";
import { UvBackend } from "./uv-backend.js";

/**
 * The backend a workspace calls for, by the files at its root, first match wins:
 *
 * 1. `package-lock.json` or `package.json` → `npm`
 * 2. `uv.lock`, or a pyproject.toml declaring a project, and uv on the host → `uv`
 * 3. `requirements.txt`, or a pyproject.toml declaring a project → `venv`
 * 4. `Dockerfile` → `docker`
 * 5. else `none`
 *
 * Language tooling comes before Docker: a project with both a lockfile and a Dockerfile
 * usually runs its commands with the former, and a Dockerfile is used only when it is
 * all there is. A pyproject.toml holding only tool settings (`[tool.ruff]`) does not count.
 * `NotFoundError` when the workspace is not a folder on the host.
 */
export async function detectBackend(host: Host, workspace: string): Promise<BackendName> {
  const root = await resolveWorkspace(host, workspace, new Deadline(`bootstrap detection in ${workspace}`));
  const names = ["package-lock.json", "package.json", "uv.lock", "requirements.txt", "Dockerfile"] as const;
  const [found, pyproject] = await Promise.all([
    Promise.all(
      names.map(async (name) => [name, (await host.stat(posix.join(root, name))) !== undefined] as const),
    ),
    host.readFile(posix.join(root, "pyproject.toml")),
  ]);
  const has = new Set(found.filter(([, exists]) => exists).map(([name]) => name));
  const python = declaresProject(pyproject);
  if (has.has("package-lock.json") || has.has("package.json")) return "npm";
  if ((has.has("uv.lock") || python) && (await new UvBackend().unavailable(host)) === undefined) return "uv";
  if (has.has("requirements.txt") || python) return "venv";
  if (has.has("Dockerfile")) return "docker";
  return "none";
}
