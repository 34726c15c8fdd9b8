import { ValidationError } from "../../errors.js";
import { shellQuote } from "../../util/shell-quote.js";
import type { Host } from "../../host/host.js";
import type { BootstrapBackend, BootstrapOptions, BootstrapReport } from "./bootstrap-backend.js";
import { fingerprint } from "./marker.js";
import type { Inputs, PrepareContext, Preparation } from "./prepare-workspace.js";
import { prepareWorkspace } from "./prepare-workspace.js";
import { VENV_ACTIVATION } from "./python-project.js";
import { PROBE_TIMEOUT_MS } from "./tool-check.js";
import { inWorkspace } from "./workspace-shell.js";

/** PEP 685 extra names. */
const EXTRA_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/**
 * Prints uv's path: from the PATH, else where its installer puts it (~/.local/bin,
 * formerly ~/.cargo/bin), which non-interactive SSH sessions often leave off the PATH.
 */
const FIND_UV =
  'command -v uv || { for uv in "$HOME/.local/bin/uv" "$HOME/.cargo/bin/uv"; do [ -x "$uv" ] && echo "$uv" && exit 0; done; exit 1; }';

/**
 * Python projects managed by uv: `uv sync` (with `--locked` when uv.lock exists, so a
 * lockfile out of step with pyproject.toml fails as `npm ci` does; without one uv
 * writes it), plus `--extra X` per requested extra. The environment is `.venv` in the
 * workspace (UV_PROJECT_ENVIRONMENT is pinned to it), and commands run with it
 * activated rather than through `uv run`, which would sync again, without the extras.
 * Inputs: pyproject.toml, uv.lock, .python-version, the extras and uv's version.
 */
export class UvBackend implements BootstrapBackend {
  readonly name = "uv";

  async unavailable(host: Host): Promise<string | undefined> {
    const found = await host.exec(FIND_UV, { timeoutMs: PROBE_TIMEOUT_MS });
    if (found.exitCode === 0) return undefined;
    return `uv not found on ${host.label} (neither on the PATH nor in ~/.local/bin or ~/.cargo/bin)`;
  }

  async prepare(host: Host, workspace: string, options: BootstrapOptions): Promise<BootstrapReport> {
    const extras = [...new Set(options.extras ?? [])].sort();
    for (const extra of extras) {
      if (!EXTRA_NAME.test(extra))
        throw new ValidationError("extras", `${JSON.stringify(extra)} is not an extra name`);
    }
    return prepareWorkspace(this, uvSteps(extras), host, workspace, options);
  }

  wrap(command: string, workspace: string, env: Readonly<Record<string, string>> = {}): string {
    return inWorkspace(command, workspace, env, VENV_ACTIVATION);
  }
}

interface UvInputs extends Inputs {
  uv: string;
  locked: boolean;
}

function uvSteps(extras: readonly string[]): Preparation<UvInputs> {
  const inspect = async (ctx: PrepareContext): Promise<UvInputs> => {
    const uv = (await ctx.query(FIND_UV)).trim();
    const [pyproject, lock, pythonVersion, version] = await Promise.all([
      ctx.read("pyproject.toml"),
      ctx.read("uv.lock"),
      ctx.read(".python-version"),
      ctx.query(`${shellQuote(uv)} --version`),
    ]);
    return {
      fingerprint: fingerprint({
        "pyproject.toml": pyproject,
        "uv.lock": lock,
        ".python-version": pythonVersion,
        extras: extras.join("\n"),
        uv: version,
      }),
      uv,
      locked: lock !== undefined,
    };
  };
  return {
    inspect,

    present: (ctx) => ctx.exists(".venv/bin/python"),

    async install(ctx, inputs) {
      const flags = [
        ...(inputs.locked ? ["--locked"] : []),
        ...extras.flatMap((e) => ["--extra", shellQuote(e)]),
      ];
      const command = [shellQuote(inputs.uv), "sync", ...flags].join(" ");
      const { stdout, stderr } = await ctx.run(command, {
        UV_PROJECT_ENVIRONMENT: ".venv",
        UV_NO_PROGRESS: "1",
      });
      const resolved = /Resolved (\d+ packages?)/.exec(`${stderr}\n${stdout}`)?.[1];
      const withExtras = extras.length ? ` (extras: ${extras.join(", ")})` : "";
      // Without a lockfile uv just wrote one: record the inputs as they are now.
      const after = inputs.locked ? undefined : (await inspect(ctx)).fingerprint;
      return {
        detail: `uv sync: ${resolved ?? "done"}${withExtras}`,
        ...(after !== undefined ? { fingerprint: after } : {}),
      };
    },
  };
}
