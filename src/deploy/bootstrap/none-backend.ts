import type { Host } from "../../host/host.js";
import { Deadline } from "../../util/deadline.js";
import type { BootstrapBackend, BootstrapOptions, BootstrapReport } from "./bootstrap-backend.js";
import { resolveWorkspace } from "./prepare-workspace.js";
import { inWorkspace } from "./workspace-shell.js";

/**
 * Workspaces that need nothing installed (shell scripts, prebuilt binaries). `prepare`
 * only checks the workspace exists, and always reports `skipped`; commands run in the
 * workspace with the host's own tools.
 */
export class NoneBackend implements BootstrapBackend {
  readonly name = "none";

  async unavailable(_host: Host): Promise<string | undefined> {
    return undefined;
  }

  async prepare(host: Host, workspace: string, options: BootstrapOptions): Promise<BootstrapReport> {
    const started = Date.now();
    const deadline = new Deadline(`none bootstrap of ${workspace} on ${host.label}`, options);
    await resolveWorkspace(host, workspace, deadline);
    return {
      backend: this.name,
      skipped: true,
      durationMs: Date.now() - started,
      detail: "nothing to prepare",
    };
  }

  wrap(command: string, workspace: string, env: Readonly<Record<string, string>> = {}): string {
    return inWorkspace(command, workspace, env);
  }
}
