import type { Host } from "../../host/host.js";
import type { BootstrapBackend, BootstrapOptions, BootstrapReport } from "./bootstrap-backend.js";
import { fingerprint } from "./marker.js";
import { plural } from "./plural.js";
import type { Inputs, PrepareContext, Preparation } from "./prepare-workspace.js";
import { prepareWorkspace } from "./prepare-workspace.js";
import { VENV_ACTIVATION, declaresProject } from "./python-project.js";
import { missingTools } from "./tool-check.js";
import { inWorkspace } from "./workspace-shell.js";

const PIP = ".venv/bin/python -m pip --disable-pip-version-check --no-input";

/**
 * Python projects with the host's `python3`: a `.venv` in the workspace, then
 * `pip install -r requirements.txt` when there is one and `pip install -e .` when
 * pyproject.toml declares a project (editable, so source changes need no new run).
 * Inputs: requirements.txt, pyproject.toml and the Python version; files that
 * requirements.txt includes (`-r`, `-c`) are not followed. A changed input installs
 * into the existing venv: packages dropped from the requirements stay until the
 * `.venv` is removed. Commands run with the venv activated.
 */
export class VenvBackend implements BootstrapBackend {
  readonly name = "venv";

  async unavailable(host: Host): Promise<string | undefined> {
    const missing = await missingTools(host, ["python3"]);
    if (missing) return missing;
    // Debian and Ubuntu ship python3 without venv's pip bootstrap (package python3-venv).
    const probe = await host.exec("python3 -c 'import venv, ensurepip'", { timeoutMs: 20_000 });
    if (probe.exitCode !== 0)
      return `python3 cannot make a venv (install python3-venv): ${probe.stderr.trim()}`;
    return undefined;
  }

  prepare(host: Host, workspace: string, options: BootstrapOptions): Promise<BootstrapReport> {
    return prepareWorkspace(this, venvSteps, host, workspace, options);
  }

  wrap(command: string, workspace: string, env: Readonly<Record<string, string>> = {}): string {
    return inWorkspace(command, workspace, env, VENV_ACTIVATION);
  }
}

interface VenvInputs extends Inputs {
  requirements: boolean;
  project: boolean;
}

async function inspect(ctx: PrepareContext): Promise<VenvInputs> {
  const [requirements, pyproject, python] = await Promise.all([
    ctx.read("requirements.txt"),
    ctx.read("pyproject.toml"),
    ctx.query("python3 -c 'import sys; print(sys.version)'"),
  ]);
  return {
    fingerprint: fingerprint({ "requirements.txt": requirements, "pyproject.toml": pyproject, python }),
    requirements: requirements !== undefined,
    project: declaresProject(pyproject),
  };
}

const venvSteps: Preparation<VenvInputs> = {
  inspect,

  present: (ctx) => ctx.exists(".venv/bin/python"),

  async install(ctx, inputs) {
    await ctx.run("python3 -m venv .venv");
    const installed: string[] = [];
    if (inputs.requirements) {
      await ctx.run(`${PIP} install -r requirements.txt`);
      installed.push("requirements.txt");
    }
    if (inputs.project) {
      await ctx.run(`${PIP} install -e .`);
      installed.push("the project");
    }
    const packages = (await ctx.query(`${PIP} freeze`)).split("\n").filter((l) => l && !l.startsWith("#"));
    const from = installed.length ? ` from ${installed.join(" and ")}` : "";
    return { detail: `venv .venv: ${plural(packages.length, "package")}${from}` };
  },
};
