import { readFile } from "node:fs/promises";
import type { Readable } from "node:stream";
import { z } from "zod";
import { configuredBaseImage, rewriteBaseImage } from "../config.js";
import type { EnvType } from "../runtime/instance.js";
import type { DockerConnection } from "../runtime/docker/docker-connection.js";
import { imageRuntime } from "../runtime/resolve-runtime.js";
import { SERVER_FILE_NAME, serverScriptPath } from "../server/server-files.js";
import type { OperationOptions } from "../util/deadline.js";
import { Deadline } from "../util/deadline.js";
import { parseOptions } from "../util/validate.js";
import { filesContext, folderContext } from "./build-context.js";
import {
  DEFAULT_CONTEXT_DIR,
  baseStageTag,
  defaultDockerfile,
  serverLayerDockerfile,
} from "./dockerfiles.js";
import { readEnvFolder } from "../runtime/env-folder.js";
import type { EnvFolder } from "../runtime/env-folder.js";
import { imageRefSchema } from "./image-ref.js";

/** Options of `buildImageFromEnv`; the names are the Python affinetes' ones. */
export interface BuildImageOptions extends OperationOptions {
  /** The environment folder (env.py, optional Dockerfile and requirements.txt). */
  envPath: string;
  /** Tag of the final image, e.g. `"calculator:latest"`. */
  imageTag: string;
  /** Overrides the env type detected from env.py. */
  envType?: EnvType;
  /** Build without Docker's layer cache. */
  nocache?: boolean;
  /** No build output on stderr. */
  quiet?: boolean;
  /** Build args for the user's Dockerfile. */
  buildargs?: Record<string, string>;
  /**
   * Base image for folders without a Dockerfile (and build arg `BASE_IMAGE`); default
   * `AFFINETES_BASE_IMAGE` or `python:3.12-slim`, then mapped by `AFFINETES_IMAGE_REWRITE`.
   */
  baseImage?: string;
  /** The Docker engine; default from `DOCKER_HOST`, else the local socket. */
  docker?: DockerConnection;
  /** Receives each line of build output (also when `quiet`). */
  onProgress?: (line: string) => void;
}

const schema = z.object({
  envPath: z.string().min(1),
  imageTag: imageRefSchema,
  envType: z.enum(["function_based", "http_based"]).optional(),
  nocache: z.boolean().optional(),
  quiet: z.boolean().optional(),
  buildargs: z.record(z.string(), z.string()).optional(),
  baseImage: imageRefSchema.optional(),
  timeoutMs: z.number().int().positive().optional(),
});

/**
 * Builds an environment image in two stages: the folder's Dockerfile (or a default one)
 * becomes `<tag>-base`; a thin layer adds the method server and the `affinetes.env.type`
 * label. Nothing is fetched at build time beyond what the user's Dockerfile does.
 * Returns the image tag.
 */
export async function buildImageFromEnv(options: BuildImageOptions): Promise<string> {
  parseOptions(schema, stripFunctions(options), "build options");
  const folder = await readEnvFolder(options.envPath, options.envType);
  const baseImage = rewriteBaseImage(options.baseImage ?? configuredBaseImage());
  const deadline = new Deadline(`building ${options.imageTag}`, options);
  const baseTag = baseStageTag(options.imageTag);
  const common = {
    nocache: options.nocache ?? false,
    quiet: options.quiet ?? false,
    onProgress: options.onProgress,
    ...(deadline.signal ? { signal: deadline.signal } : {}),
  };
  const runtime = imageRuntime(options.docker);
  try {
    deadline.check();
    await runtime.images.build({
      ...common,
      context: await userStageContext(folder, baseImage),
      tag: baseTag,
      buildargs: { BASE_IMAGE: baseImage, ...options.buildargs },
    });
    const server = await readFile(serverScriptPath(), "utf8");
    const layer = { Dockerfile: serverLayerDockerfile(baseTag, folder.envType), [SERVER_FILE_NAME]: server };
    await runtime.images.build({ ...common, context: filesContext(layer), tag: options.imageTag });
  } catch (err) {
    throw deadline.fired ? deadline.error(err) : err; // the whole build's deadline, not one stage's
  } finally {
    await runtime.close();
  }
  return options.imageTag;
}

/**
 * The folder as context. Without a Dockerfile of its own, the folder goes under `app/`
 * beside a generated Dockerfile, so nothing of ours is copied into the image.
 */
async function userStageContext(folder: EnvFolder, baseImage: string): Promise<Readable> {
  if (folder.hasDockerfile) return folderContext(folder.path);
  return folderContext(
    folder.path,
    { Dockerfile: defaultDockerfile(folder, baseImage) },
    DEFAULT_CONTEXT_DIR,
  );
}

function stripFunctions(options: BuildImageOptions): Record<string, unknown> {
  const { signal: _signal, onProgress: _onProgress, docker: _docker, ...rest } = options;
  return rest;
}
