import type { Readable } from "node:stream";
import { createReadStream, readFileSync, statSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { z } from "zod";
import { rewriteBaseImage } from "../config.js";
import { ValidationError } from "../errors.js";
import type { DockerConnection } from "../runtime/docker/docker-connection.js";
import { connectionFromEnv } from "../runtime/docker/docker-connection.js";
import { imageRuntime } from "../runtime/resolve-runtime.js";
import type { RuntimeImages } from "../runtime/runtime-images.js";
import type { OperationOptions } from "../util/deadline.js";
import { Deadline } from "../util/deadline.js";
import { shellQuote } from "../util/shell-quote.js";
import { SingleFlight } from "../util/single-flight.js";
import { parseOptions } from "../util/validate.js";
import { dockerignoreFilter } from "./build-context.js";
import type { EscapeChar } from "./dockerfile-syntax.js";
import { escapeCharOf, jsonWord, quotedWord, rewriteFromLines, runInstruction } from "./dockerfile-syntax.js";
import type { ContextEntry } from "./image-context.js";
import { hashContext, hashPackedContext, listFolder, listPath, packContext } from "./image-context.js";
import { imageRefSchema } from "./image-ref.js";

/** Options of `Image.build`. */
export interface ImageBuildOptions extends OperationOptions {
  /** The Docker engine; default from `DOCKER_HOST`, else the local socket. */
  docker?: DockerConnection;
  /** Receives each line of build output; not called when the image already exists. */
  onProgress?: (line: string) => void;
}

type ImageSource =
  { kind: "image"; ref: string } | { kind: "dockerfile"; content: string; contextDir: string | undefined };

type ImageStep =
  | { kind: "run"; command: string }
  | { kind: "workdir"; path: string }
  | { kind: "env"; vars: ReadonlyArray<readonly [string, string]> }
  | { kind: "copy"; localPath: string; remotePath: string; isFolder: boolean };

/** Folder of the build context that holds the files of `copy` steps (`<folder>/<n>`). */
const COPIES_DIR = ".affinetes-copies";
const TAG_REPOSITORY = "affinetes-image";
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const APT_PACKAGE = /^[A-Za-z0-9][A-Za-z0-9.+:=~_/-]*$/;
const SHELL_SAFE = /^[A-Za-z0-9._+=:,/@%-]+$/;

const buildSchema = z.object({ timeoutMs: z.number().int().positive().optional() });

/** Builds in progress in this process, per engine and tag. */
const inFlight = new SingleFlight<string>();

/**
 * An immutable description of a container image, built lazily. Every step returns a new
 * `Image`; the one it was called on is unchanged, so images can be shared and extended.
 *
 * ```ts
 * const image = Image.python("3.12").aptInstall("git").pipInstall("numpy").workdir("/app");
 * const tag = await image.build(); // "affinetes-image/<hash>:latest"
 * ```
 *
 * The tag is derived from the content: `affinetes-image/<first 16 hex digits of
 * contentHash()>:latest`. Two images with the same Dockerfile and the same copied files
 * get the same tag, so `build()` finds an image built earlier (by any process, on that
 * engine) and does not build it again.
 *
 * The image of every `FROM` goes through `AFFINETES_IMAGE_REWRITE` (see
 * `rewriteBaseImage`), read when the Dockerfile is rendered: sites without a registry
 * map public bases to local images, and the tag follows the image actually built.
 */
export class Image {
  private constructor(
    private readonly source: ImageSource,
    private readonly steps: readonly ImageStep[],
  ) {
    Object.freeze(this.steps);
  }

  /** Debian's slim image, `debian:<version>-slim`. */
  static debianSlim(version = "bookworm"): Image {
    return Image.registry(`debian:${version}-slim`, "version");
  }

  /** Ubuntu, `ubuntu:<version>`. */
  static ubuntu(version = "24.04"): Image {
    return Image.registry(`ubuntu:${version}`, "version");
  }

  /** Python's slim image, `python:<version>-slim`. */
  static python(version = "3.12"): Image {
    return Image.registry(`python:${version}-slim`, "version");
  }

  /** Node's slim image, `node:<version>-slim`. */
  static node(version = "20"): Image {
    return Image.registry(`node:${version}-slim`, "version");
  }

  /** Any image reference, e.g. `"registry:5000/org/base:1"`. */
  static from(ref: string): Image {
    return Image.registry(ref, "ref");
  }

  /**
   * A Dockerfile on this machine; its folder is the build context (less what its
   * `.dockerignore` excludes). The Dockerfile is read now; the context files when the
   * image is hashed or built. Steps are added after the Dockerfile's last instruction.
   */
  static fromDockerfile(path: string): Image {
    requireText(path, "path");
    const file = resolve(path);
    let content: string;
    try {
      content = readFileSync(file, "utf8");
    } catch (err) {
      throw new ValidationError("path", `cannot read the Dockerfile ${file}: ${(err as Error).message}`);
    }
    return new Image({ kind: "dockerfile", content, contextDir: dirname(file) }, []);
  }

  /** An inline Dockerfile. Its build context is empty except for what `copy` adds. */
  static dockerfile(content: string): Image {
    requireText(content, "content");
    return new Image({ kind: "dockerfile", content, contextDir: undefined }, []);
  }

  private static registry(ref: string, option: string): Image {
    if (!imageRefSchema.safeParse(ref).success) {
      throw new ValidationError(option, `"${ref}" is not an image reference like "name:tag"`);
    }
    return new Image({ kind: "image", ref }, []);
  }

  /**
   * Installs Debian/Ubuntu packages (`apt-get update`, `apt-get install -y
   * --no-install-recommends`, then the package lists are removed). Names may carry a
   * version or release (`curl=7.88.1-10`, `git/bookworm-backports`).
   */
  aptInstall(...packages: string[]): Image {
    if (packages.length === 0) return this;
    packages.forEach((p, i) => {
      if (typeof p !== "string" || !APT_PACKAGE.test(p)) {
        throw new ValidationError(`packages.${i}`, `"${String(p)}" is not a Debian package name`);
      }
    });
    return this.run(
      `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${packages.join(" ")} && rm -rf /var/lib/apt/lists/*`,
    );
  }

  /** Installs Python packages with `pip install --no-cache-dir`; specs like `"numpy>=2,<3"` are quoted for the shell. */
  pipInstall(...packages: string[]): Image {
    if (packages.length === 0) return this;
    return this.run(`pip install --no-cache-dir ${packageArgs(packages)}`);
  }

  /** Installs npm packages globally (`npm install -g`); specs like `"@scope/tool@^1"` are quoted for the shell. */
  npmInstall(...packages: string[]): Image {
    if (packages.length === 0) return this;
    return this.run(`npm install -g ${packageArgs(packages)}`);
  }

  /** Runs shell commands (`/bin/sh -c`), one `RUN` each, in order. */
  runCommands(...commands: string[]): Image {
    commands.forEach((c, i) => requireText(c, `commands.${i}`));
    return new Image(this.source, [
      ...this.steps,
      ...commands.map((command) => ({ kind: "run" as const, command })),
    ]);
  }

  /** Sets the working folder of the following steps and of containers (created when missing). */
  workdir(path: string): Image {
    requireLine(path, "path");
    return this.with({ kind: "workdir", path });
  }

  /** Sets environment variables for the following steps and for containers. Values are taken literally (no `$` expansion). */
  env(vars: Readonly<Record<string, string>>): Image {
    const entries = Object.entries(vars ?? {});
    for (const [name, value] of entries) {
      if (!ENV_NAME.test(name))
        throw new ValidationError(`env.${name}`, "expected a variable name like MY_VAR");
      if (typeof value !== "string") throw new ValidationError(`env.${name}`, "expected a string");
      if (/[\r\n\0]/.test(value)) {
        throw new ValidationError(`env.${name}`, "a Dockerfile cannot hold newlines or NUL in a value");
      }
    }
    return entries.length ? this.with({ kind: "env", vars: entries }) : this;
  }

  /**
   * Copies a file or a folder of this machine into the image, as Docker's `COPY` does: a
   * file becomes `remotePath` (or goes into it when `remotePath` ends with `/`); a
   * folder's contents go into `remotePath`. The bytes are read when the image is hashed
   * or built, so changed files give a new tag. Relative `remotePath`s follow `workdir`.
   */
  copy(localPath: string, remotePath: string): Image {
    requireText(localPath, "localPath");
    requireLine(remotePath, "remotePath");
    const absolute = resolve(localPath);
    let isFolder: boolean;
    try {
      const info = statSync(absolute);
      if (!info.isFile() && !info.isDirectory()) throw new Error("neither a file nor a folder");
      isFolder = info.isDirectory();
    } catch (err) {
      throw new ValidationError("localPath", `cannot copy ${absolute}: ${(err as Error).message}`);
    }
    return this.with({ kind: "copy", localPath: absolute, remotePath, isFolder });
  }

  /** The Dockerfile this image builds from, with `AFFINETES_IMAGE_REWRITE` applied to its `FROM`s. */
  dockerfile(): string {
    const escape: EscapeChar = this.source.kind === "dockerfile" ? escapeCharOf(this.source.content) : "\\";
    const lines =
      this.source.kind === "image"
        ? [`FROM ${rewriteBaseImage(this.source.ref)}`]
        : [rewriteFromLines(this.source.content, rewriteBaseImage).trimEnd()];
    let copies = 0;
    for (const step of this.steps) {
      if (step.kind === "run") lines.push(runInstruction(step.command, escape));
      else if (step.kind === "workdir") lines.push(`WORKDIR ${quotedWord(step.path, escape)}`);
      else if (step.kind === "env") {
        lines.push(
          `ENV ${step.vars.map(([name, value]) => `${name}=${quotedWord(value, escape)}`).join(" ")}`,
        );
      } else {
        const target =
          !step.isFolder && step.remotePath.endsWith("/")
            ? `${step.remotePath}${basename(step.localPath)}`
            : step.remotePath;
        lines.push(`COPY [${jsonWord(`${COPIES_DIR}/${copies++}`, escape)}, ${jsonWord(target, escape)}]`);
      }
    }
    return `${lines.join("\n")}\n`;
  }

  /**
   * sha256 (hex) over the rendered Dockerfile and every file of the build context: the
   * copied files and, for `fromDockerfile`, the Dockerfile's folder. Names, permission
   * bits and bytes count; timestamps do not.
   */
  async contentHash(): Promise<string> {
    return hashContext(this.dockerfile(), await this.contextEntries());
  }

  /** The tag `build()` gives this image: `affinetes-image/<contentHash 0..16>:latest`. */
  async tag(): Promise<string> {
    return tagOf(await this.contentHash());
  }

  /**
   * Builds the image unless the engine has it already, and returns its tag. Concurrent
   * calls for the same image and engine in this process share one build (each keeps its
   * own `timeoutMs` and `signal`; the build stops when all of them gave up). Build output
   * goes to `onProgress` only. A failed build is a `BuildError` with the output's tail.
   */
  async build(options: ImageBuildOptions = {}): Promise<string> {
    parseOptions(buildSchema, { timeoutMs: options.timeoutMs }, "build options");
    const deadline = new Deadline("building an image", options);
    const dockerfile = this.dockerfile();
    const entries = await deadline.run(() => this.contextEntries());
    const tag = tagOf(await deadline.run(() => hashContext(dockerfile, entries)));
    return inFlight.join(
      `${JSON.stringify(options.docker ?? connectionFromEnv())} ${tag}`,
      (signal, emit) =>
        withImages(options.docker, (images) =>
          ensureImage(images, tag, () => packContext(dockerfile, entries), signal, emit),
        ),
      { deadline, onProgress: options.onProgress },
    );
  }

  /**
   * The build context as a tar stream (the rendered Dockerfile at its root) and its
   * content hash: what a remote builder (the control plane's `/v1/images`) takes.
   */
  async buildContext(): Promise<{ hash: string; context: Readable }> {
    const dockerfile = this.dockerfile();
    const entries = await this.contextEntries();
    return { hash: await hashContext(dockerfile, entries), context: packContext(dockerfile, entries) };
  }

  private with(step: ImageStep): Image {
    return new Image(this.source, [...this.steps, step]);
  }

  private run(command: string): Image {
    return this.with({ kind: "run", command });
  }

  private async contextEntries(): Promise<ContextEntry[]> {
    const entries: ContextEntry[] = [];
    if (this.source.kind === "dockerfile" && this.source.contextDir) {
      const ignored = await dockerignoreFilter(this.source.contextDir);
      const skip = (rel: string) =>
        rel === "Dockerfile" || rel === COPIES_DIR || rel.startsWith(`${COPIES_DIR}/`) || ignored(rel);
      entries.push(...(await listFolder(this.source.contextDir, "", skip)));
    }
    let copies = 0;
    for (const step of this.steps) {
      if (step.kind !== "copy") continue;
      const listed = await listPath(step.localPath, `${COPIES_DIR}/${copies++}`).catch((err: Error) => {
        throw new ValidationError("localPath", `cannot copy ${step.localPath}: ${err.message}`);
      });
      if ((listed[0]?.kind === "directory") !== step.isFolder) {
        throw new ValidationError(
          "localPath",
          `${step.localPath} changed between file and folder since copy()`,
        );
      }
      entries.push(...listed);
    }
    return entries;
  }
}

/**
 * Builds a packed context received from a client (the control plane's `/v1/images`) on
 * `images`: its content hash must be `hash` (checked from the tar itself, so no client
 * can put other content under an image's tag), then it is built once, as `Image.build`
 * would. `tarFile` is a file holding the context. Returns the tag.
 */
export async function buildPackedImage(
  images: RuntimeImages,
  hash: string,
  tarFile: string,
  options: OperationOptions = {},
): Promise<string> {
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new ValidationError("hash", "a sha256 in hex (64 characters)");
  const deadline = new Deadline("building an image", options);
  const actual = await deadline.run(() => hashPackedContext(createReadStream(tarFile)));
  if (actual !== hash)
    throw new ValidationError(
      "hash",
      `the context's content hash is ${actual}, not the ${hash} it was sent as`,
    );
  const tag = tagOf(hash);
  return inFlight.join(
    `images#${identity(images)} ${tag}`,
    (signal, emit) => ensureImage(images, tag, () => createReadStream(tarFile), signal, emit),
    { deadline },
  );
}

/** The tag `Image.build` gives the image of content hash `hash`. */
export function tagOf(hash: string): string {
  return `${TAG_REPOSITORY}/${hash.slice(0, 16)}:latest`;
}

/** Builds `tag` unless an image of that tag exists there. */
async function ensureImage(
  images: RuntimeImages,
  tag: string,
  context: () => Readable,
  signal: AbortSignal,
  emit: (line: string) => void,
): Promise<string> {
  if (await images.has(tag)) return tag;
  await images.build({ context: context(), tag, nocache: false, quiet: true, onProgress: emit, signal });
  return tag;
}

/** Runs `fn` with the images of the engine `connection` names, released after. */
async function withImages<T>(
  connection: DockerConnection | undefined,
  fn: (images: RuntimeImages) => Promise<T>,
): Promise<T> {
  const runtime = imageRuntime(connection);
  try {
    return await fn(runtime.images);
  } finally {
    await runtime.close();
  }
}

/** A number per images object, so builds on one engine share their flights. */
const identities = new WeakMap<RuntimeImages, number>();
let identified = 0;
function identity(images: RuntimeImages): number {
  let id = identities.get(images);
  if (id === undefined) identities.set(images, (id = ++identified));
  return id;
}

function packageArgs(packages: readonly string[]): string {
  return packages
    .map((spec, i) => {
      if (typeof spec !== "string" || !spec.trim() || /\p{Cc}/u.test(spec)) {
        throw new ValidationError(`packages.${i}`, "expected a non-empty package spec on one line");
      }
      if (spec.startsWith("-")) {
        throw new ValidationError(`packages.${i}`, `"${spec}" is an option, not a package (use runCommands)`);
      }
      return SHELL_SAFE.test(spec) ? spec : shellQuote(spec);
    })
    .join(" ");
}

function requireText(value: string, option: string): void {
  if (typeof value !== "string" || !value.trim())
    throw new ValidationError(option, "expected a non-empty string");
  if (value.includes("\0")) throw new ValidationError(option, "NUL is not allowed");
}

function requireLine(value: string, option: string): void {
  requireText(value, option);
  if (/[\r\n]/.test(value)) throw new ValidationError(option, "a Dockerfile cannot hold newlines here");
}
