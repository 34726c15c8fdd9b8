import { posix } from "node:path";
import { ValidationError } from "../../errors.js";
import { shellQuote } from "../../util/shell-quote.js";
import type { Host } from "../../host/host.js";
import type { BootstrapBackend, BootstrapOptions, BootstrapReport } from "./bootstrap-backend.js";
import { contextFingerprint } from "./context-fingerprint.js";
import { STATE_DIR, fingerprint, statePath } from "./marker.js";
import type { Inputs, Preparation } from "./prepare-workspace.js";
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
 * Projects with a Dockerfile: built by the host's own Docker engine (`docker build` run
 * on the host, with the workspace as context) into `affinetes-deploy/<project>:<hash>`,
 * where the hash is that of the build context (every file `.dockerignore` keeps, with
 * its mode). A rebuild removes the image it replaces when no container uses it.
 * Commands run in a throw-away container of that image, the workspace mounted at
 * `/workspace`; the image is read from `.affinetes/` when the command runs, so `wrap`
 * needs no state.
 */
export class DockerBackend implements BootstrapBackend {
  readonly name = "docker";

  async unavailable(host: Host): Promise<string | undefined> {
    const missing = await missingTools(host, ["docker"]);
    if (missing) return missing;
    const probe = await host.exec("docker version --format '{{.Server.Version}}'", {
      timeoutMs: PROBE_TIMEOUT_MS,
    });
    if (probe.exitCode === 0) return undefined;
    const why = probe.timedOut ? `no answer within ${PROBE_TIMEOUT_MS} ms` : probe.stderr.trim();
    return `the Docker engine of ${host.label} does not answer: ${why}`;
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
}

function dockerSteps(project: string): Preparation<DockerInputs> {
  return {
    async inspect(ctx) {
      const context = await contextFingerprint(ctx);
      return {
        fingerprint: fingerprint({ context, project }),
        image: `affinetes-deploy/${project}:${context.slice(0, 12)}`,
      };
    },

    async present(ctx, inputs) {
      const recorded = (await ctx.read(posix.join(STATE_DIR, IMAGE_FILE)))?.toString("utf8").trim();
      if (recorded !== inputs.image) return false;
      const probe = await ctx.host.exec(
        `docker image inspect --format '{{.Id}}' ${shellQuote(inputs.image)}`,
        {
          timeoutMs: PROBE_TIMEOUT_MS,
        },
      );
      return probe.exitCode === 0;
    },

    async install(ctx, inputs) {
      const imageFile = statePath(ctx.workspace, IMAGE_FILE);
      const previous = (await ctx.read(posix.join(STATE_DIR, IMAGE_FILE)))?.toString("utf8").trim();
      // --force-rm: the legacy builder would otherwise keep the container of a failed step.
      await ctx.run(
        [
          "docker build --force-rm",
          `-t ${shellQuote(inputs.image)}`,
          `--label ${shellQuote(`${PROJECT_LABEL}=${project}`)}`,
          ".",
        ].join(" "),
      );
      await withinDeadline(ctx.deadline, async () => {
        await ctx.host.mkdir(posix.join(ctx.workspace, STATE_DIR));
        await ctx.host.writeFile(imageFile, `${inputs.image}\n`);
      });
      if (previous && previous !== inputs.image) {
        // Best effort: an image a container still uses stays (docker refuses without -f).
        await ctx.host.exec(`docker rmi ${shellQuote(previous)}`, { timeoutMs: PROBE_TIMEOUT_MS });
      }
      return { detail: `image ${inputs.image}` };
    },
  };
}
