import type { Host } from "../../host/host.js";

/** The ways a workspace can be prepared on a host. */
export type BackendName = "npm" | "venv" | "uv" | "docker" | "none";

/** The names `bootstrapBackend` accepts, in `detectBackend`'s order of preference. */
export const BACKEND_NAMES: readonly BackendName[] = ["npm", "uv", "venv", "docker", "none"];

/** Options of one `prepare` run. */
export interface BootstrapOptions {
  /** Upper bound for the whole run; past it the install is killed and `TimeoutError` thrown. */
  timeoutMs?: number;
  /** Cancels the run (the install is killed); it then rejects with `AbortedError`. */
  signal?: AbortSignal;
  /** Receives the install's output (stdout and stderr), line by line, as it comes. */
  onOutput?: (line: string) => void;
  /** uv: optional dependency groups to install (`uv sync --extra X` each). */
  extras?: readonly string[];
  /** What is deployed; names the Docker image (`affinetes-deploy/<project>:<hash>`). */
  project: string;
}

/** What a `prepare` run did. */
export interface BootstrapReport {
  backend: BackendName;
  /** True when there was nothing to do: the inputs are unchanged since the last successful run. */
  skipped: boolean;
  durationMs: number;
  /** What the environment is, e.g. `"npm ci: 3 packages"`, `"image affinetes-deploy/x:abc123"`. */
  detail: string;
}

/**
 * The bootstrap extension point: one way to turn a workspace copied to a host into an
 * environment its commands can run in. Every implementation passes the conformance
 * suite in `test/deploy/bootstrap-conformance.test.ts`.
 */
export interface BootstrapBackend {
  readonly name: BackendName;
  /** Why this backend cannot run on the host (a tool is missing, the engine does not answer), or undefined. */
  unavailable(host: Host): Promise<string | undefined>;
  /**
   * Prepares the workspace. Idempotent: skips when its inputs (lockfile, requirements,
   * Dockerfile and build context...) are unchanged since the last successful run, as
   * recorded in a marker file in `<workspace>/.affinetes/`, and what that run made is
   * still there. Throws `CommandError` (with the tail of the output) when the install
   * fails, `TimeoutError`/`AbortedError` past `timeoutMs` or on `signal`, `UnsupportedError`
   * when the backend is unavailable on the host and `NotFoundError` when the workspace is missing.
   */
  prepare(host: Host, workspace: string, options: BootstrapOptions): Promise<BootstrapReport>;
  /**
   * A shell command line that runs `command` (a shell command) in the prepared
   * environment, with the workspace as working directory and `env` exported. A
   * workspace starting with `~/` is the login user's home.
   */
  wrap(command: string, workspace: string, env?: Readonly<Record<string, string>>): string;
}
