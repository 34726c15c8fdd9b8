import type { Host } from "../../host/host.js";
import type { BootstrapBackend, BootstrapOptions, BootstrapReport } from "./bootstrap-backend.js";
import { fingerprint } from "./marker.js";
import { plural } from "./plural.js";
import type { Inputs, PrepareContext, Preparation } from "./prepare-workspace.js";
import { prepareWorkspace } from "./prepare-workspace.js";
import { missingTools } from "./tool-check.js";
import { inWorkspace } from "./workspace-shell.js";

const LOCKFILES = ["package-lock.json", "npm-shrinkwrap.json"] as const;

/**
 * Node projects: `npm ci` from the lockfile (`npm install` without one, which writes
 * it). Inputs: package.json, the lockfile and the Node version (native modules are
 * built for it). Commands run with `node_modules/.bin` first on the PATH.
 */
export class NpmBackend implements BootstrapBackend {
  readonly name = "npm";

  unavailable(host: Host): Promise<string | undefined> {
    return missingTools(host, ["node", "npm"]);
  }

  prepare(host: Host, workspace: string, options: BootstrapOptions): Promise<BootstrapReport> {
    return prepareWorkspace(this, npmSteps, host, workspace, options);
  }

  wrap(command: string, workspace: string, env: Readonly<Record<string, string>> = {}): string {
    return inWorkspace(command, workspace, env, { PATH: '"$PWD"/node_modules/.bin:"$PATH"' });
  }
}

interface NpmInputs extends Inputs {
  lockfile: string | undefined;
  /** Packages the lockfile installs (none for a project without dependencies). */
  packages: number;
}

async function readInputs(ctx: PrepareContext): Promise<NpmInputs> {
  const [manifest, ...locks] = await Promise.all([
    ctx.read("package.json"),
    ...LOCKFILES.map((name) => ctx.read(name)),
  ]);
  const index = locks.findIndex((lock) => lock !== undefined);
  const lock = locks[index];
  const node = (await ctx.query("node --version")).trim();
  return {
    fingerprint: fingerprint({ "package.json": manifest, lockfile: lock, node }),
    lockfile: LOCKFILES[index],
    packages: countPackages(lock),
  };
}

/** Packages in a lockfile (v2/v3 `packages`, v1 `dependencies`); 0 when unreadable. */
function countPackages(lock: Buffer | undefined): number {
  if (!lock) return 0;
  try {
    const parsed = JSON.parse(lock.toString("utf8")) as {
      packages?: Record<string, unknown>;
      dependencies?: Record<string, unknown>;
    };
    if (parsed.packages)
      return Object.keys(parsed.packages).filter((k) => k.includes("node_modules/")).length;
    return Object.keys(parsed.dependencies ?? {}).length;
  } catch {
    return 0;
  }
}

const npmSteps: Preparation<NpmInputs> = {
  inspect: readInputs,

  // npm makes no node_modules for a project without dependencies.
  present: async (ctx, inputs) => inputs.packages === 0 || (await ctx.exists("node_modules")),

  async install(ctx, before) {
    const command = before.lockfile ? "npm ci --no-audit --no-fund" : "npm install --no-audit --no-fund";
    await ctx.run(command);
    // `npm install` writes the lockfile: record the inputs as they are now.
    const after = await readInputs(ctx);
    const what = before.lockfile ? "npm ci" : "npm install";
    return { detail: `${what}: ${plural(after.packages, "package")}`, fingerprint: after.fingerprint };
  },
};
