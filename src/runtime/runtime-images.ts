import type { Readable } from "node:stream";
import type { OperationOptions } from "../util/deadline.js";

/** What `RuntimeImages.build` takes. */
export interface ImageBuildRequest extends OperationOptions {
  /** The build context, a tar stream with the Dockerfile at its root. */
  context: Readable;
  /** Tag of the built image. */
  tag: string;
  buildargs?: Readonly<Record<string, string>>;
  /** Labels of the built image. */
  labels?: Readonly<Record<string, string>>;
  /** Build without the engine's layer cache. */
  nocache?: boolean;
  /** No build output on stderr (`onProgress` still receives it). */
  quiet?: boolean;
  /** Receives each line of build output. */
  onProgress?: ((line: string) => void) | undefined;
}

/** The images of a runtime's host: what its instances run. Only the runtime opens the engine. */
export interface RuntimeImages {
  /** Whether the host has an image of this reference. */
  has(ref: string): Promise<boolean>;
  /** Builds a context into `tag`; a failure is a `BuildError` with the output's tail. */
  build(request: ImageBuildRequest): Promise<void>;
  /**
   * Makes `ref` present on the runtime's host as it is on this machine: a remote host that
   * lacks it (or has another image under that name) gets this machine's image; concurrent
   * callers share one shipment. Nothing to do for a local engine.
   */
  ship(ref: string, options?: OperationOptions & { onProgress?: (line: string) => void }): Promise<void>;
  /** Removes an image; false when there was none, or (unless `force`) a container still uses it. */
  remove(ref: string, options?: { force?: boolean }): Promise<boolean>;
}
