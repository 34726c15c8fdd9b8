import type Docker from "dockerode";
import { InfrastructureError, NotFoundError, RuntimeUnavailableError } from "../../errors.js";
import type { OperationOptions } from "../../util/deadline.js";
import { Deadline } from "../../util/deadline.js";
import type { EnvType } from "../instance-spec.js";
import { LABELS } from "../labels.js";
import type { ImageBuildRequest, RuntimeImages } from "../runtime-images.js";
import type { DockerEngine } from "./docker-connection.js";
import { pullImage } from "./pull-image.js";
import { runBuild } from "./run-build.js";
import { shipImage } from "./ship-image.js";

/** What starting a container needs to know of its image. */
export interface ImageFacts {
  id: string;
  envType: EnvType;
  /** Its entrypoint and command, as a task without a command of its own runs them. */
  command: string[];
}

/** The images of one Docker engine (`DockerRuntime.images`). */
export class DockerImages implements RuntimeImages {
  private readonly docker: Docker;

  constructor(
    private readonly engine: DockerEngine,
    private readonly onProgress: ((line: string) => void) | undefined,
  ) {
    this.docker = engine.docker;
  }

  async has(ref: string): Promise<boolean> {
    return (await this.inspect(ref)) !== undefined;
  }

  async build(request: ImageBuildRequest): Promise<void> {
    await runBuild(this.docker, request.context, {
      tag: request.tag,
      nocache: request.nocache,
      buildargs: request.buildargs,
      labels: request.labels,
      quiet: request.quiet,
      onProgress: request.onProgress,
      deadline: new Deadline(`building ${request.tag}`, request),
    });
  }

  async ship(
    ref: string,
    options: OperationOptions & { onProgress?: (line: string) => void; keepRemote?: boolean } = {},
  ): Promise<void> {
    if (!this.engine.sshHost) return; // a local engine's images are this machine's
    await shipImage(ref, this.docker, this.engine.label, new Deadline(`shipping ${ref}`, options), {
      keepRemote: options.keepRemote,
      onProgress: options.onProgress ?? this.onProgress,
    });
  }

  async remove(ref: string, options: { force?: boolean } = {}): Promise<boolean> {
    try {
      await this.docker.getImage(ref).remove({ force: options.force ?? false });
      return true;
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 404 || status === 409) return false; // none, or a container uses it
      throw engineError(`could not remove image ${ref}`, err);
    }
  }

  /**
   * What a start needs of `ref`: pulled first when asked (falling back to the local
   * image), shipped to a remote host otherwise. `NotFoundError` when there is none.
   */
  async facts(ref: string, pull: boolean, deadline: Deadline): Promise<ImageFacts> {
    if (pull) await pullImage(this.docker, ref, deadline);
    // A pulled image is the one asked for; otherwise a remote host gets this machine's image.
    if (this.engine.sshHost) await this.ship(ref, { signal: deadline.signal, keepRemote: pull });
    const info = await this.inspect(ref);
    if (!info) {
      throw new NotFoundError(
        "image",
        ref,
        `Image not found: ${ref}. Build it with buildImageFromEnv, or set pull: true to fetch it from a registry.`,
      );
    }
    const label = info.Config?.Labels?.[LABELS.envType];
    const entrypoint = info.Config?.Entrypoint ?? [];
    return {
      id: info.Id,
      envType: label === "http_based" ? "http_based" : "function_based",
      command: [...(typeof entrypoint === "string" ? [entrypoint] : entrypoint), ...(info.Config?.Cmd ?? [])],
    };
  }

  private async inspect(ref: string): Promise<Docker.ImageInspectInfo | undefined> {
    try {
      return await this.docker.getImage(ref).inspect();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw engineError(`could not inspect image ${ref}`, err);
    }
  }
}

/** An engine call that failed: the engine did not answer at all, or answered an error. */
function engineError(what: string, err: unknown): Error {
  const message = (err as Error).message;
  if ((err as { statusCode?: number }).statusCode === undefined)
    return new RuntimeUnavailableError("docker", `the Docker engine does not answer (${message})`, {
      cause: err,
    });
  return new InfrastructureError(`${what}: ${message}`, { cause: err });
}
