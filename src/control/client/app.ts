import { APIError, NotFoundError, PermissionDeniedError, ValidationError } from "../../errors.js";
import { DEFAULT_DISK_PATH } from "../control-plane.js";
import type { ClientOptions, ContainerOptions, ImageSource } from "./client.js";
import { Client } from "./client.js";
import type { ContainerHandle } from "./container-handle.js";
import type { FunctionOptions } from "./function-handle.js";
import { FunctionHandle, parseFunctionRef } from "./function-handle.js";

/** Options of an `App`: where its service is, and the disk it lives on. */
export interface AppOptions extends ClientOptions {
  name: string;
  /**
   * The disk every container of the app mounts (its id, `owner/name`, or the name of a disk
   * you own). Default: your own disk `app-<name>`, created when missing; a disk of that
   * name that someone else owns is never used, even when they granted it to you.
   */
  disk?: string;
  /** Where the disk is mounted in the app's containers; default `/mnt/disk`. */
  diskPath?: string;
  /** Where the functions' and jobs' output goes as it is written: a callback, or `"stderr"`; default nowhere. */
  logs?: "stderr" | ((chunk: string) => void);
}

/**
 * An app: functions and jobs that run in containers of one service, all with the app's
 * disk mounted (Modal-like):
 *
 * ```ts
 * const app = new App({ name: "ml", url, apiKey });
 * const train = app.function({ image: Image.python("3.11") }, "jobs/train.py:main");
 * const out = await train.remote({ epochs: 3 });
 * ```
 */
export class App implements AsyncDisposable {
  readonly name: string;
  readonly client: Client;
  readonly diskPath: string;
  private disk: Promise<string> | undefined;

  constructor(private readonly options: AppOptions) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(options.name))
      throw new ValidationError("name", "an app name is letters, digits, '_', '.', '-' (at most 63)");
    this.name = options.name;
    this.diskPath = options.diskPath ?? DEFAULT_DISK_PATH;
    this.client = new Client(options);
  }

  /**
   * A function of a file: `"path/file.py:function"` (Python) or
   * `"path/file.js#exportName"` / `.mjs` / `.ts` (Node; `.ts` needs Node >= 22.6 in the
   * image). A path that exists here is uploaded to the same path on the app's disk;
   * otherwise it must be on the disk already.
   */
  function<Args extends Record<string, unknown> = Record<string, unknown>, Result = unknown>(
    options: FunctionOptions,
    ref: string,
  ): FunctionHandle<Args, Result> {
    return new FunctionHandle<Args, Result>(this, options, parseFunctionRef(ref));
  }

  /** Runs a shell command in a container with the app's disk mounted; returns it running. */
  async run(
    options: Omit<ContainerOptions, "disk" | "diskPath"> & { image: ImageSource },
  ): Promise<ContainerHandle> {
    return this.client.containers.create({
      ...options,
      disk: await this.diskId(),
      diskPath: this.diskPath,
      metadata: { ...options.metadata, "affinetes.app": this.name },
    });
  }

  /** The app's disk id (created on first use when the app names none). */
  diskId(): Promise<string> {
    this.disk ??= this.resolveDisk().catch((err: unknown) => {
      this.disk = undefined; // a later call tries again
      throw err;
    });
    return this.disk;
  }

  /** Where output goes, per the `logs` option. */
  get logSink(): ((chunk: string) => void) | undefined {
    const logs = this.options.logs;
    if (logs === "stderr") return (chunk) => process.stderr.write(chunk);
    return logs;
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * The disk named in the options, or the principal's own `app-<name>`: a bare name
   * resolves to the caller's own disk only (the service's rule), and the owner is checked
   * here too, so an app never runs on a disk someone else controls by default.
   */
  private async resolveDisk(): Promise<string> {
    if (this.options.disk) return (await this.client.disks.get(this.options.disk)).id;
    const name = `app-${this.name}`;
    const me = await this.client.whoami();
    const own = async () => {
      const disk = await this.client.disks.get(name).catch((err: unknown) => {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      });
      if (disk && disk.owner !== me.name)
        throw new PermissionDeniedError(`disk ${name} belongs to ${disk.owner}, not to ${me.name}`);
      return disk?.id;
    };
    const existing = await own();
    if (existing) return existing;
    try {
      return (await this.client.disks.create({ name })).id;
    } catch (err) {
      if (!(err instanceof APIError && err.status === 409)) throw err;
      const raced = await own(); // another client of ours created it meanwhile
      if (raced) return raced;
      throw err;
    }
  }
}
