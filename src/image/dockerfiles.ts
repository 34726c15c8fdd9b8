import { SERVER_PORT } from "../config.js";
import { SERVER_FILE_NAME } from "../server/server-files.js";
import type { EnvType } from "../runtime/instance.js";
import type { EnvFolder } from "../runtime/env-folder.js";

/** Folder of the build context holding the environment when the Dockerfile is generated. */
export const DEFAULT_CONTEXT_DIR = "app";

/**
 * The Dockerfile used when an environment folder has none: the configured Python base
 * image (build arg `BASE_IMAGE`), the folder in /app, and `requirements.txt` when present.
 */
export function defaultDockerfile(folder: EnvFolder, baseImage: string): string {
  const lines = [`ARG BASE_IMAGE=${baseImage}`, "FROM ${BASE_IMAGE}", "WORKDIR /app"];
  if (folder.hasRequirements) {
    lines.push(
      `COPY ${DEFAULT_CONTEXT_DIR}/requirements.txt /app/requirements.txt`,
      "RUN pip install --no-cache-dir -r /app/requirements.txt",
    );
  }
  lines.push(`COPY ${DEFAULT_CONTEXT_DIR}/ /app/`);
  if (folder.envType === "http_based") {
    lines.push(
      `CMD ["python3", "-m", "uvicorn", "env:app", "--host", "0.0.0.0", "--port", "${SERVER_PORT}"]`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/**
 * The thin second stage: the user's image plus the method server and the env-type label.
 * HTTP-based environments keep their own CMD; nothing is fetched from the network.
 */
export function serverLayerDockerfile(baseTag: string, envType: EnvType): string {
  const lines = [`FROM ${baseTag}`, `LABEL affinetes.env.type="${envType}"`];
  if (envType === "function_based") {
    lines.push(
      `COPY ${SERVER_FILE_NAME} /affinetes/${SERVER_FILE_NAME}`,
      `EXPOSE ${SERVER_PORT}`,
      "ENTRYPOINT []",
      `CMD ["python3", "-u", "/affinetes/${SERVER_FILE_NAME}"]`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** `repo:tag` -> `repo:tag-base`, the tag of the user's own stage. */
export function baseStageTag(imageTag: string): string {
  const slash = imageTag.lastIndexOf("/");
  const colon = imageTag.lastIndexOf(":");
  return colon > slash ? `${imageTag}-base` : `${imageTag}:latest-base`;
}
