import { posix } from "node:path";
import { BuildError, CommandError, ValidationError } from "../../errors.js";
import { DockerRuntime } from "../../runtime/docker/docker-runtime.js";
import { shellQuote } from "../../util/shell-quote.js";
import type { Host } from "../../host/host.js";
import type { BootstrapBackend, BootstrapOptions, BootstrapReport } from "./bootstrap-backend.js";
import { readBuildContext } from "./context-fingerprint.js";
import { STATE_DIR, fingerprint, statePath } from "./marker.js";
import type { Inputs, Preparation, PrepareContext } from "./prepare-workspace.js";
import { prepareWorkspace } from "./prepare-workspace.js";
import { withinDeadline } from "./remote-command.js";
import { PROBE_TIMEOUT_MS, missingTools } from "./tool-check.js";
import { checkEnvNames, quotePath } from "./workspace-shell.js";

/** The file in `<workspace>/.affinetes/` naming the image `wrap` runs. */
const IMAGE_FILE = "bootstrap-docker.image";
/** Repository names Docker accepts as one path component. */
const PROJECT_NAME = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** Label of every image this backend builds, valued with the project. */
export const PROJECT_LABEL = "affinetes.deploy.project";
/** Label of every container `wrap` runs. */
export const CONTAINER_LABEL = "affinetes.deploy";
/**
 * Names who started a container: the job folder (`AFFINETES_JOB_DIR`) or the SSH command's
 * tag (`AFFINETES_COMMAND_TAG`), so killing either removes it (a killed `docker run`
 * client leaves its container running).
 */
export const OWNER_LABEL = "affinetes.deploy.owner";

/**
 * Projects with a Dockerfile: built by the host's own Docker engine (through a Docker
 * runtime on the host's SSH connection, the workspace's files as context, packed on the
 * host) into `affinetes-deploy/<project>:<hash>`,
 * where the hash is that of the build context (every file `.dockerignore` keeps, with
 * its mode). A rebuild removes the image it replaces when no container uses it.
 * Commands run in a throw-away container of that image, the workspace mounted at
 * `/workspace`; the image is read from `.affinetes/` when the command runs, so `wrap`
 * needs no state.
 */
export class DockerBackend implements BootstrapBackend {
  readonly name = "docker";

  async unavailable(host: Host): Promise<string | undefined> {
    // the docker client runs the commands (`wrap`); the engine builds
    const missing = await missingTools(host, ["docker"]);
    if (missing) return missing;
    await using engine = hostEngine(host);
    return engine.runtime.ping(PROBE_TIMEOUT_MS).then(
      () => undefined,
      (err: Error) => `the Docker engine of ${host.label} does not answer: ${err.message}`,
    );
  }

  async prepare(host: Host, workspace: string, options: BootstrapOptions): Promise<BootstrapReport> {
    if (!PROJECT_NAME.test(options.project)) {
      throw new ValidationError(
        "project",
        `${JSON.stringify(options.project)} cannot name a Docker image (lowercase letters, digits, and . _ - between them)`,
      );
    }
    return prepareWorkspace(this, dockerSteps(options.project), host, workspace, options);
  }

  wrap(command: string, workspace: string, env: Readonly<Record<string, string>> = {}): string {
    if (!command.trim()) throw new ValidationError("command", "is empty");
    checkEnvNames(env);
    const imageFile = shellQuote(posix.join(STATE_DIR, IMAGE_FILE));
    const notPrepared = shellQuote(
      `affinetes: no image recorded in ${STATE_DIR}/${IMAGE_FILE}; prepare the workspace first`,
    );
    const readImage = `{ image=$(cat ${imageFile} 2>/dev/null) || { echo ${notPrepared} >&2; false; }; }`;
    const run = [
      "docker run --rm",
      `--label ${CONTAINER_LABEL}=1`,
      `--label "${OWNER_LABEL}=\${AFFINETES_JOB_DIR:-\${AFFINETES_COMMAND_TAG:-}}"`,
      '-v "$PWD":/workspace -w /workspace',
      ...Object.entries(env).map(([k, v]) => `-e ${shellQuote(`${k}=${v}`)}`),
      '"$image" sh -c',
      shellQuote(command),
    ].join(" ");
    return `cd ${quotePath(workspace)} && ${readImage} && ${run}`;
  }
}

interface DockerInputs extends Inputs {
  image: string;
  /** The workspace's paths in the build context (what `.dockerignore` keeps). */
  paths: string[];
}

/** The Docker engine of a deploy host, on its SSH connection; released on dispose. */
function hostEngine(host: Host): { runtime: DockerRuntime } & AsyncDisposable {
  const runtime = new DockerRuntime({ connection: { ssh: host.label } });
  return { runtime, [Symbol.asyncDispose]: () => runtime.close() };
}

/**
 * Builds the image from the workspace: the kept paths are packed on the host (`tar`, no
 * recursion: each path is listed) and streamed to its engine. A failed build is a
 * `CommandError` carrying the build's output, as a failed install command's is.
 */
async function build(
  ctx: PrepareContext,
  runtime: DockerRuntime,
  inputs: DockerInputs,
  project: string,
): Promise<void> {
  const tar = await ctx.host.spawn("tar --null --no-recursion -T - -cf - --", { cwd: ctx.workspace });
  tar.stdin.end(inputs.paths.map((p) => `${p}\0`).join(""));
  tar.stderr.resume();
  let built = false;
  try {
    await runtime.images.build({
      context: tar.stdout,
      tag: inputs.image,
      labels: { [PROJECT_LABEL]: project },
      quiet: true,
      onProgress: ctx.options.onOutput,
      ...(ctx.deadline.signal ? { signal: ctx.deadline.signal } : {}),
    });
    built = true;
  } catch (err) {
    if (ctx.deadline.fired) throw ctx.deadline.error(err);
    if (err instanceof BuildError)
      throw new CommandError(`docker build -t ${inputs.image} .`, 1, err.log, err.message);
    throw err;
  } finally {
    if (built) await tar.exit;
    else tar.kill(); // the engine stopped reading: nothing more to pack
  }
}

function dockerSteps(project: string): Preparation<DockerInputs> {
  return {
    async inspect(ctx) {
      const context = await readBuildContext(ctx);
      return {
        fingerprint: fingerprint({ context: context.fingerprint, project }),
        image: `affinetes-deploy/${project}:${context.fingerprint.slice(0, 12)}`,
        paths: context.paths,
      };
    },

    async present(ctx, inputs) {
      const recorded = (await ctx.read(posix.join(STATE_DIR, IMAGE_FILE)))?.toString("utf8").trim();
      if (recorded !== inputs.image) return false;
      await using engine = hostEngine(ctx.host);
      return withinDeadline(ctx.deadline, () => engine.runtime.images.has(inputs.image));
    },

    async install(ctx, inputs) {
      const imageFile = statePath(ctx.workspace, IMAGE_FILE);
      const previous = (await ctx.read(posix.join(STATE_DIR, IMAGE_FILE)))?.toString("utf8").trim();
      await using engine = hostEngine(ctx.host);
      await build(ctx, engine.runtime, inputs, project);
      await withinDeadline(ctx.deadline, async () => {
        await ctx.host.mkdir(posix.join(ctx.workspace, STATE_DIR));
        await ctx.host.writeFile(imageFile, `${inputs.image}\n`);
      });
      // Best effort: an image a container still uses stays.
      if (previous && previous !== inputs.image)
        await engine.runtime.images.remove(previous).catch(() => false);
      return { detail: `image ${inputs.image}` };
    },
  };
}
