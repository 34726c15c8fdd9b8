import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { isAbsolute, normalize, resolve } from "node:path";
import { functionRunnerPath } from "../../server/server-files.js";
import { build } from "esbuild";
import { ContainerError, RemoteError, ValidationError } from "../../errors.js";
import { shellQuote } from "../../util/shell-quote.js";
import type { NetworkPolicy } from "../../runtime/network-policy.js";
import type { App } from "./app.js";
import type { ImageSource } from "./client.js";
import type { ContainerHandle } from "./container-handle.js";
import type { Volume } from "./volume.js";

/** How a function's containers run. */
export interface FunctionOptions {
  image: ImageSource;
  vcpuCount?: number;
  memSizeMiB?: number;
  /** Further disks, by path inside the container (the app's disk is always mounted). */
  volumes?: Record<string, Volume>;
  env?: Record<string, string>;
  /** Most calls of this function running at once from this client; the rest wait their turn. Default: no limit. */
  concurrency?: number;
  /** The interpreter in the image: default `python3` for Python, `node` for JavaScript/TypeScript. */
  interpreter?: string;
  /** What its containers may reach: `"none"`, `"full"`, or `{ allow: [...] }`; default the service's. */
  network?: NetworkPolicy;
}

/** A parsed function reference. */
export interface FunctionRef {
  language: "python" | "node";
  /** Relative to the app's disk. */
  file: string;
  name: string;
  /** As given. */
  text: string;
}

/** `dir/file.py:function` or `dir/file.{js,mjs,ts}#export`. */
export function parseFunctionRef(ref: string): FunctionRef {
  const python = /^(.+\.py):([A-Za-z_][A-Za-z0-9_]*)$/.exec(ref);
  const node = /^(.+\.(?:js|mjs|cjs|ts|mts))#([A-Za-z_$][A-Za-z0-9_$]*)$/.exec(ref);
  const match = python ?? node;
  if (!match?.[1] || !match[2]) {
    throw new ValidationError(
      "function",
      `expected "path/file.py:function" or "path/file.ts#exportName", got ${JSON.stringify(ref)}`,
    );
  }
  const file = normalize(match[1]).replace(/^(\.\/)+/, "");
  if (isAbsolute(file) || file.startsWith("..")) {
    throw new ValidationError("function", `the file is a path relative to the app's disk: ${match[1]}`);
  }
  return { language: python ? "python" : "node", file, name: match[2], text: ref };
}

const RUNNERS = {
  python: functionRunnerPath("python"),
  node: functionRunnerPath("node"),
} as const;

/**
 * The runner's source, read from this package, given to the interpreter on its command
 * line (`python3 -c`, `node -e`): it is never read from the app's disk, where anyone who
 * may write to the disk (or a container mounting it) could replace it between calls.
 */
const runnerSources = new Map<FunctionRef["language"], string>();
function runnerSource(language: FunctionRef["language"]): string {
  let source = runnerSources.get(language);
  if (source === undefined) {
    source = readFileSync(RUNNERS[language], "utf8");
    runnerSources.set(language, source);
  }
  return source;
}

/** A Python or Node function that runs in its own container, on the app's disk. */
export class FunctionHandle<
  Args extends Record<string, unknown> = Record<string, unknown>,
  Result = unknown,
> {
  private uploaded: Promise<string> | undefined;
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly app: App,
    private readonly options: FunctionOptions,
    readonly ref: FunctionRef,
  ) {
    if (
      options.concurrency !== undefined &&
      !(Number.isInteger(options.concurrency) && options.concurrency > 0)
    )
      throw new ValidationError("concurrency", "a positive integer");
  }

  /**
   * Calls the function with keyword arguments (Python) or one object argument (Node),
   * and returns its JSON result. A failure raises `RemoteError` carrying the remote type,
   * message and traceback; a container that dies without a result, `ContainerError`.
   */
  async remote(kwargs?: Args, options: { args?: unknown[]; signal?: AbortSignal } = {}): Promise<Result> {
    return this.spawn(kwargs, options).result();
  }

  /**
   * Starts a call and returns at once; `result()` awaits it. With `concurrency`, the call
   * waits for its turn first (in the background: spawning never blocks on it).
   */
  spawn(kwargs?: Args, options: { args?: unknown[]; signal?: AbortSignal } = {}): FunctionCall<Result> {
    const started = (async () => {
      await this.acquire(options.signal);
      try {
        return await this.start(kwargs, options);
      } catch (err) {
        this.release();
        throw err;
      }
    })();
    return new FunctionCall<Result>(this.app, this.ref.text, started, () => this.release());
  }

  /** Uploads what the call needs, writes its arguments, and starts its container. */
  private async start(kwargs: Args | undefined, options: { args?: unknown[] }): Promise<StartedCall> {
    const disk = await this.app.diskId();
    const file = await this.code(disk);
    const callId = `call_${randomBytes(8).toString("hex")}`;
    const callDir = `.affinetes/calls/${callId}`;
    await this.app.client.disks.writeFile(
      disk,
      `${callDir}/args.json`,
      JSON.stringify({ args: options.args ?? [], kwargs: kwargs ?? {} }),
    );
    const on = (path: string) => shellQuote(`${this.app.diskPath}/${path}`);
    const interpreter = this.options.interpreter ?? (this.ref.language === "python" ? "python3" : "node");
    const strip = this.ref.language === "node" && /\.m?ts$/.test(file) ? " --experimental-strip-types" : "";
    const inline = this.ref.language === "python" ? "-c" : "--input-type=module -e"; // the runner takes its last 3 arguments
    const runner = `${inline} ${shellQuote(runnerSource(this.ref.language))}`;
    const container = await this.app.run({
      image: this.options.image,
      command: `${interpreter}${strip} ${runner} ${on(callDir)} ${on(file)} ${this.ref.name}`,
      ...(this.options.vcpuCount !== undefined ? { vcpuCount: this.options.vcpuCount } : {}),
      ...(this.options.memSizeMiB !== undefined ? { memSizeMiB: this.options.memSizeMiB } : {}),
      ...(this.options.volumes ? { volumes: this.options.volumes } : {}),
      ...(this.options.env ? { env: this.options.env } : {}),
      ...(this.options.network !== undefined ? { network: this.options.network } : {}),
      metadata: { "affinetes.function": this.ref.text, "affinetes.call": callId },
    });
    const sink = this.app.logSink;
    return { disk, callDir, container, streaming: sink ? forward(container, sink) : Promise.resolve() };
  }

  /**
   * Puts the function's code on the disk when its file exists here (once per handle), and
   * returns the path to run. Python files go to the same path. JavaScript and TypeScript
   * files are bundled with their local imports into one ES module (esbuild; packages stay
   * imports), so they run on any Node >= 18 in the image, types stripped.
   */
  private code(disk: string): Promise<string> {
    const local = resolve(this.ref.file);
    if (!existsSync(local)) {
      // already on the disk (a .ts file there needs a Node that strips types)
      return Promise.resolve(this.ref.file);
    }
    this.uploaded ??= this.uploadCode(disk, local).catch((err: unknown) => {
      this.uploaded = undefined;
      throw err;
    });
    return this.uploaded;
  }

  private async uploadCode(disk: string, local: string): Promise<string> {
    if (this.ref.language === "python") {
      await this.app.client.disks.writeFile(disk, this.ref.file, readFileSync(local));
      return this.ref.file;
    }
    const bundled = await build({
      entryPoints: [local],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node18",
      packages: "external",
      write: false,
      logLevel: "silent",
    }).catch((err: unknown) => {
      throw new ValidationError("function", `${this.ref.file} does not compile: ${(err as Error).message}`);
    });
    const code = bundled.outputFiles[0]?.contents ?? new Uint8Array();
    const path = `.affinetes/code/${createHash("sha256").update(code).digest("hex").slice(0, 16)}.mjs`;
    await this.app.client.disks.writeFile(disk, path, code);
    return path;
  }

  private async acquire(signal?: AbortSignal): Promise<void> {
    const limit = this.options.concurrency;
    if (limit === undefined || this.running < limit) {
      this.running++;
      return;
    }
    await new Promise<void>((resolveTurn, reject) => {
      const turn = () => {
        signal?.removeEventListener("abort", onAbort);
        resolveTurn();
      };
      const onAbort = () => {
        this.waiting.splice(this.waiting.indexOf(turn), 1);
        reject(signal?.reason ?? new Error("aborted"));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(turn);
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next)
      next(); // the slot passes on
    else this.running--;
  }
}

/** A call whose container was started. */
interface StartedCall {
  disk: string;
  callDir: string;
  container: ContainerHandle;
  streaming: Promise<void>;
}

/** A call of a function: it runs to its end whether or not `result()` is awaited. */
export class FunctionCall<Result> {
  private readonly outcome: Promise<Result>;

  constructor(
    private readonly app: App,
    private readonly ref: string,
    private readonly started: Promise<StartedCall>,
    done: () => void,
  ) {
    this.outcome = started.then((call) => this.finish(call).finally(done));
    this.outcome.catch(() => undefined); // reported by result(), not as an unhandled rejection
  }

  /** The container running the call, once it started. */
  async container(): Promise<ContainerHandle> {
    return (await this.started).container;
  }

  /** Waits for the call to end; its result, or the function's error. */
  result(): Promise<Result> {
    return this.outcome;
  }

  private async finish({ disk, callDir, container, streaming }: StartedCall): Promise<Result> {
    const ended = await container.wait();
    await streaming;
    const text = await this.app.client.disks
      .readFile(disk, `${callDir}/result.json`)
      .then((b) => b.toString("utf8"))
      .catch(() => undefined);
    const logs = text === undefined ? await container.logs({ tail: 50 }).catch(() => "") : "";
    await this.app.client.disks.deleteFile(disk, callDir).catch(() => false);
    await container.delete().catch(() => undefined);
    if (text === undefined) {
      throw new ContainerError(
        container.id,
        `${this.ref} ended (${ended.status}, exit code ${ended.exitCode ?? "none"}) without a result${ended.error ? `: ${ended.error}` : ""}`,
        { ...(ended.exitCode !== undefined ? { exitCode: ended.exitCode } : {}), logs },
      );
    }
    const document = JSON.parse(text) as {
      result?: Result;
      error?: { type: string; message: string; traceback: string };
    };
    if (document.error) {
      throw new RemoteError(this.ref, ended.exitCode ?? 1, {
        errorType: document.error.type,
        message: document.error.message,
        traceback: document.error.traceback,
      });
    }
    return document.result as Result;
  }
}

/** Sends the container's output to `sink` as it is written. */
async function forward(container: ContainerHandle, sink: (chunk: string) => void): Promise<void> {
  try {
    for await (const chunk of container.streamLogs()) sink(chunk);
  } catch {
    // the output is a convenience: the result does not depend on it
  }
}
