import { randomUUID } from "node:crypto";
import { PassThrough } from "node:stream";
import type { Readable, Writable } from "node:stream";
import type { SFTPWrapper, Stats } from "ssh2";
import { HostConnectionError, ValidationError } from "../errors.js";
import { SshHost, tagged, wrapCommand } from "../host/ssh-host.js";
import { parseHostAddress } from "../host/host-address.js";
import type { ExecOptions, ExecResult } from "../runtime/instance.js";
import { shellQuote } from "../util/shell-quote.js";

/** How to reach and trust a host. */
export interface HostOptions {
  /** Private key file(s); `~/` is expanded. Default: the host's IdentityFile in ~/.ssh/config, then ~/.ssh/id_*. */
  key?: string | readonly string[];
  /** default ~/.ssh/known_hosts */
  knownHostsFile?: string;
  /** Trust and record a host key seen for the first time (a changed key is always refused). */
  acceptNewHostKeys?: boolean;
  /** Bound on connecting and authenticating (default 10 000 ms). */
  connectTimeoutMs?: number;
}

/** A command running on a host, its streams open. */
export interface RemoteProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** The exit code (-1 when the channel closed without one, e.g. killed). */
  readonly exit: Promise<number>;
  /** Kills the command and every process it started (found by a tag in their environment); `exit` then resolves. */
  kill(): void;
}

/** A file's metadata on the host. */
export interface RemoteStat {
  size: number;
  /** Modification time, seconds since the epoch. */
  mtime: number;
  isDirectory: boolean;
}

/**
 * A machine reachable over SSH: one persistent connection (re-established on next use
 * after a drop) carrying commands, streams and SFTP.
 */
export class Host implements AsyncDisposable {
  private sftpSession: Promise<SFTPWrapper> | undefined;
  private homeDir: Promise<string> | undefined;

  private constructor(private readonly ssh: SshHost) {}

  /**
   * Connects and authenticates, so a wrong address, user or key fails here with a
   * `HostConnectionError` naming the cause. `spec`: `user@host[:port]`, `ssh://user@host[:port]`
   * or a `~/.ssh/config` name.
   */
  static async connect(spec: string, options: HostOptions = {}): Promise<Host> {
    const address = parseHostAddress(spec, "host");
    if (address.kind !== "ssh") {
      throw new ValidationError("host", `${JSON.stringify(spec)} is this machine; give an SSH host`);
    }
    const keys = typeof options.key === "string" ? [options.key] : [...(options.key ?? [])];
    const ssh = await SshHost.connect(address, {
      keyFiles: keys.map(expandHome),
      ...(options.knownHostsFile !== undefined ? { knownHostsFile: options.knownHostsFile } : {}),
      ...(options.acceptNewHostKeys !== undefined ? { acceptNewHostKeys: options.acceptNewHostKeys } : {}),
      ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
    });
    return new Host(ssh);
  }

  /** `ssh://user@host:port`. */
  get label(): string {
    return this.ssh.label;
  }

  /** The host name or address it was reached at (what other hosts use to reach it, e.g. MASTER_ADDR). */
  get hostname(): string {
    return this.ssh.address.hostname;
  }

  /** Runs a command (through the login user's shell); `cwd`, `env` and `timeoutMs` apply. */
  exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    return this.ssh.exec(command, options);
  }

  /** Starts a command and hands over its streams (for tar pipes and following output). */
  async spawn(command: string, options: Pick<ExecOptions, "cwd" | "env"> = {}): Promise<RemoteProcess> {
    const tag = randomUUID();
    const channel = await this.ssh.open(tagged(tag, wrapCommand(command, options)));
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    channel.pipe(stdout);
    channel.stderr.pipe(stderr);
    const exit = new Promise<number>((resolve) => {
      let code = -1;
      channel.once("exit", (c: number | null) => (code = c ?? -1));
      channel.once("close", () => resolve(code));
    });
    return {
      stdin: channel,
      stdout,
      stderr,
      exit,
      kill: () => this.ssh.killTagged(tag, channel),
    };
  }

  /** The login user's home directory on the host. */
  home(): Promise<string> {
    this.homeDir ??= this.exec('printf %s "$HOME"').then((r) => {
      if (r.exitCode !== 0 || !r.stdout.startsWith("/")) {
        this.homeDir = undefined;
        throw new HostConnectionError(this.label, `cannot read $HOME: ${r.stderr.trim()}`);
      }
      return r.stdout;
    });
    return this.homeDir;
  }

  /** Expands a leading `~/` to the host's home directory. */
  async resolvePath(path: string): Promise<string> {
    if (path === "~") return this.home();
    return path.startsWith("~/") ? `${await this.home()}/${path.slice(2)}` : path;
  }

  /** Reads a file over SFTP; undefined when it does not exist. */
  async readFile(path: string): Promise<Buffer | undefined> {
    const sftp = await this.sftp();
    const absolute = await this.resolvePath(path);
    return new Promise((resolve, reject) =>
      sftp.readFile(absolute, (err, data) =>
        err ? (isNoSuchFile(err) ? resolve(undefined) : reject(err)) : resolve(data),
      ),
    );
  }

  /** Writes a file over SFTP (its folder must exist). */
  async writeFile(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
    const sftp = await this.sftp();
    const absolute = await this.resolvePath(path);
    await new Promise<void>((resolve, reject) =>
      sftp.writeFile(absolute, data, { mode }, (err) => (err ? reject(err) : resolve())),
    );
  }

  /** A path's metadata; undefined when it does not exist. */
  async stat(path: string): Promise<RemoteStat | undefined> {
    const sftp = await this.sftp();
    const absolute = await this.resolvePath(path);
    return new Promise((resolve, reject) =>
      sftp.stat(absolute, (err, stats: Stats) => {
        if (err) return isNoSuchFile(err) ? resolve(undefined) : reject(err);
        resolve({ size: stats.size, mtime: stats.mtime, isDirectory: stats.isDirectory() });
      }),
    );
  }

  /** Creates a folder and its parents. */
  async mkdir(path: string): Promise<void> {
    const absolute = await this.resolvePath(path);
    const r = await this.exec(`mkdir -p ${shellQuote(absolute)}`);
    if (r.exitCode !== 0) throw new HostConnectionError(this.label, `mkdir ${absolute}: ${r.stderr.trim()}`);
  }

  /** Closes the connection; idempotent. */
  close(): void {
    this.ssh.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  private sftp(): Promise<SFTPWrapper> {
    this.sftpSession ??= this.ssh.connection().then(
      (client) =>
        new Promise<SFTPWrapper>((resolve, reject) =>
          client.sftp((err, sftp) => {
            if (err)
              return reject(new HostConnectionError(this.label, `sftp: ${err.message}`, { cause: err }));
            // A dropped connection ends the session; the next call opens a new one.
            sftp.once("close", () => (this.sftpSession = undefined));
            resolve(sftp);
          }),
        ),
    );
    this.sftpSession.catch(() => (this.sftpSession = undefined));
    return this.sftpSession;
  }
}

function isNoSuchFile(err: Error): boolean {
  return (err as { code?: number | string }).code === 2 || (err as { code?: string }).code === "ENOENT";
}

function expandHome(path: string): string {
  return path.startsWith("~/") ? `${process.env.HOME ?? ""}/${path.slice(2)}` : path;
}
