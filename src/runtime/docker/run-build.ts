import type Docker from "dockerode";
import type { Readable } from "node:stream";
import { BuildError } from "../../errors.js";
import type { Deadline } from "../../util/deadline.js";

/** How one `docker build` of a prepared context runs. */
export interface RunBuildOptions {
  /** Tag of the built image. */
  tag: string;
  nocache: boolean | undefined;
  buildargs?: Readonly<Record<string, string>> | undefined;
  labels?: Readonly<Record<string, string>> | undefined;
  /** No build output on stderr (`onProgress` still receives it). */
  quiet: boolean | undefined;
  onProgress: ((line: string) => void) | undefined;
  deadline: Deadline;
}

interface BuildEvent {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
}

const TAIL_LINES = 40;

/**
 * Builds a tar context on the engine and follows the output to its end. A failure is a
 * `BuildError` carrying the tail of the output; a fired deadline stays its own typed error.
 */
export async function runBuild(docker: Docker, context: Readable, options: RunBuildOptions): Promise<void> {
  const tail: string[] = [];
  const emit = (text: string) => {
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      options.onProgress?.(line);
      if (!options.quiet) process.stderr.write(`${line}\n`);
    }
  };
  try {
    await options.deadline.run(async (signal) => {
      const stream = await docker.buildImage(context, {
        t: options.tag,
        nocache: options.nocache ?? false,
        rm: true,
        forcerm: true,
        ...(options.buildargs ? { buildargs: { ...options.buildargs } } : {}),
        ...(options.labels ? { labels: { ...options.labels } } : {}),
        ...(signal ? { abortSignal: signal } : {}),
      });
      await new Promise<void>((resolve, reject) => {
        docker.modem.followProgress(
          stream,
          (err: Error | null, events: BuildEvent[]) => {
            const failed = err ?? events.find((e) => e.error);
            if (!failed) return resolve();
            reject(
              new Error(
                failed instanceof Error ? failed.message : (failed.errorDetail?.message ?? failed.error),
              ),
            );
          },
          (event: BuildEvent) => emit(event.stream ?? event.status ?? ""),
        );
      });
    });
  } catch (err) {
    if (options.deadline.fired) throw err;
    throw new BuildError(`building ${options.tag} failed: ${(err as Error).message}`, tail.join("\n"), {
      cause: err,
    });
  }
}
