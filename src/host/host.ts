import type { Duplex } from "node:stream";
import { HostConnectionError, UnsupportedError, ValidationError } from "../errors.js";
import { shellQuote } from "../util/shell-quote.js";
import type { ExecResult, HostExecOptions, HostProcess, SpawnOptions } from "./command.js";
import type { HostAddress } from "./host-address.js";
import { parseHostAddress } from "./host-address.js";
import type { HostFiles, RemoteStat } from "./host-files.js";
import { localFiles, sftpFiles } from "./host-files.js";
import { sharedConnections } from "./host-registry.js";
import { startLocal } from "./local-command.js";
import { startSsh } from "./ssh-command.js";
import type { HostOptions, SshConnection } from "./ssh-connection.js";
import type { StartedCommand } from "./started-command.js";
import { checkAborted, collectCommand, processOf } from "./started-command.js";

/**
 * Where commands run: this machine (`Host.local()`) or a machine over SSH
 * (`Host.connect`). A machine has one persistent SSH connection in this process, shared
 * by everything that uses it (commands, SFTP, the Docker API, tunnels, deploy) and
 * re-established on next use after a drop; each `Host` is a handle on it, and the
 * connection closes when the last handle is closed.
 *
 * Commands run through one primitive on either kind: `exec` (collected) and `spawn`
 * (streamed), bounded by `timeoutMs`/`signal`. Past the deadline a command's whole tree
 * is ended (here: its process group and every process carrying its tag; over SSH: a kill
 * of the tagged processes over the same connection) and `exec` returns within a second.
 */
export class Host implements AsyncDisposable {
  private released = false;
  private homeDir: Promise<string> | undefined;

  private constructor(
    /** `{ kind: "local" }`, or the SSH address. */
    readonly address: HostAddress,
    private readonly ssh: SshConnection | undefined,
  ) {}

  /** This machine. */
  static local(): Host {
    return new Host({ kind: "local" }, undefined);
  }

  /**
   * Connects and authenticates (or takes the connection this process already holds), so
   * a wrong address, user or key fails here with a `HostConnectionError` naming the
   * cause. `spec`: `user@host[:port]`, `ssh://user@host[:port]` or a `~/.ssh/config` name.
   */
  static async connect(spec: string | HostAddress, options: HostOptions = {}): Promise<Host> {
    const host = Host.shared(spec, options);
    if (!host.ssh)
      throw new ValidationError("host", `${JSON.stringify(spec)} is this machine; give an SSH host`);
    try {
      await host.ssh.connection();
    } catch (err) {
      host.close();
      throw err;
    }
    return host;
  }

  /** A handle on the host's shared connection, which opens on first use; `localhost` is this machine. */
  static shared(spec: string | HostAddress, options: HostOptions = {}): Host {
    const address = typeof spec === "string" ? parseHostAddress(spec, "host") : spec;
    if (address.kind === "local") return Host.local();
    return new Host(address, sharedConnections.acquire(address, options));
  }

  /** `localhost`, or `ssh://user@host:port`. */
  get label(): string {
    return this.ssh?.label ?? "localhost";
  }

  /** The host name or address it was reached at (what other hosts use to reach it, e.g. MASTER_ADDR). */
  get hostname(): string {
    return this.address.kind === "ssh" ? this.address.hostname : "localhost";
  }

  /**
   * Runs a command through the (login user's) shell; `cwd`, `env`, `input` apply. Past
   * `timeoutMs` the command and everything it started are ended and the result says
   * `timedOut` (exit code 124), with the output so far; an abort through `signal` does the
   * same and rejects with `AbortedError`. A command that exits leaving a background process
   * holding its output returns once that output has been quiet briefly.
   */
  async exec(command: string, options: HostExecOptions = {}): Promise<ExecResult> {
    checkAborted(options.signal);
    return collectCommand(await this.start(command, options), options);
  }

  /** Starts a command and hands over its streams (for tar pipes and following output). */
  async spawn(command: string, options: SpawnOptions = {}): Promise<HostProcess> {
    checkAborted(options.signal);
    return processOf(await this.start(command, options), options);
  }

  /** A channel running `command`, its stdin and stdout as one stream (e.g. `docker system dial-stdio`). SSH hosts. */
  async open(command: string): Promise<Duplex> {
    return this.remote("open a channel").open(command);
  }

  /** A TCP connection from the host to `hostname:port` (an address only the host may reach). SSH hosts. */
  async forwardOut(hostname: string, port: number): Promise<Duplex> {
    return this.remote("forward a port").forwardOut(hostname, port);
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

  /** Reads a file (over SFTP on an SSH host); undefined when it does not exist. */
  async readFile(path: string): Promise<Buffer | undefined> {
    return (await this.files()).readFile(await this.resolvePath(path));
  }

  /** Writes a file (its folder must exist). */
  async writeFile(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
    await (await this.files()).writeFile(await this.resolvePath(path), data, mode);
  }

  /** A path's metadata; undefined when it does not exist. */
  async stat(path: string): Promise<RemoteStat | undefined> {
    return (await this.files()).stat(await this.resolvePath(path));
  }

  /** Creates a folder and its parents. */
  async mkdir(path: string): Promise<void> {
    const absolute = await this.resolvePath(path);
    const r = await this.exec(`mkdir -p ${shellQuote(absolute)}`);
    if (r.exitCode !== 0) throw new HostConnectionError(this.label, `mkdir ${absolute}: ${r.stderr.trim()}`);
  }

  /** Another handle on the same connection: it stays open until every handle is closed. */
  share(): Host {
    return this.ssh ? new Host(this.address, sharedConnections.share(this.ssh)) : Host.local();
  }

  /** Lets go of the connection, which closes with its last handle (then later use fails). Idempotent. */
  close(): void {
    if (this.released) return;
    this.released = true;
    if (this.ssh) sharedConnections.release(this.ssh);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /** The one place the host's kind decides how a command starts (and so how its tree ends). */
  private async start(command: string, options: Pick<SpawnOptions, "cwd" | "env">): Promise<StartedCommand> {
    return this.ssh ? startSsh(this.ssh, command, options) : startLocal(command, options);
  }

  private remote(what: string): SshConnection {
    if (!this.ssh) throw new UnsupportedError(`cannot ${what} on this machine: it is not an SSH host`);
    return this.ssh;
  }

  private async files(): Promise<HostFiles> {
    return this.ssh ? sftpFiles(await this.ssh.sftp()) : localFiles;
  }
}
