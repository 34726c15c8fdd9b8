import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { Client } from "ssh2";
import type { ClientChannel, ConnectConfig, SFTPWrapper } from "ssh2";
import { HostConnectionError } from "../errors.js";
import { logger } from "../logger.js";
import type { HostAddress } from "./host-address.js";
import { addHostKey, checkHostKey, knownHostsName } from "./known-hosts.js";
import { SessionLinks } from "./session-links.js";

/** How to reach and trust an SSH host. */
export interface HostOptions {
  /** Private key file(s); `~/` is expanded. Default: the host's IdentityFile in ~/.ssh/config, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa. */
  key?: string | readonly string[];
  /** Private key files, as `key` (the name `loadEnv`'s `ssh` option has always used). */
  keyFiles?: readonly string[];
  /** ssh-agent socket; default `SSH_AUTH_SOCK`. */
  agent?: string;
  /** default ~/.ssh/known_hosts */
  knownHostsFile?: string;
  /** Trust and record a host key seen for the first time (a changed key is always refused). */
  acceptNewHostKeys?: boolean;
  /** Bound on connecting and authenticating (default 10 000 ms). */
  connectTimeoutMs?: number;
  /**
   * Sessions (commands, Docker API channels, SFTP) one connection carries before another
   * is opened to the host: the server's `MaxSessions` (OpenSSH's default, 10). A server
   * that allows fewer is noticed when it refuses one.
   */
  maxSessionsPerConnection?: number;
}

/** An SSH address: `parseHostAddress` of an `ssh://` host. */
export type SshAddress = Extract<HostAddress, { kind: "ssh" }>;

const DEFAULT_KEYS = ["id_ed25519", "id_ecdsa", "id_rsa"].map((k) => join(homedir(), ".ssh", k));
const MAX_BACKOFF_MS = 5_000;

/** The key files `options` name, `~/` expanded. */
export function keyFilesOf(options: HostOptions): string[] {
  const keys = typeof options.key === "string" ? [options.key] : [...(options.key ?? [])];
  return [...keys, ...(options.keyFiles ?? [])].map((path) =>
    path.startsWith("~/") ? join(homedir(), path.slice(2)) : path,
  );
}

/**
 * One persistent SSH connection to a host, shared (see `sharedConnections`) by everything
 * that talks to it: commands, SFTP, the Docker API (`docker system dial-stdio` channels)
 * and tunnels (`forwardOut`). A dropped connection is re-established on next use, with
 * backoff.
 */
export class SshConnection {
  readonly label: string;
  private client: Client | undefined;
  private connecting: Promise<Client> | undefined;
  private sftpSession: Promise<SFTPWrapper> | undefined;
  private failures = 0;
  private everConnected = false;
  private closed = false;
  private readonly links: SessionLinks;

  constructor(
    readonly address: SshAddress,
    private readonly options: HostOptions,
  ) {
    this.label = address.label;
    this.links = new SessionLinks(
      () => this.connection(),
      () => this.handshake(),
      options.maxSessionsPerConnection,
    );
  }

  /** The live client, connecting again (with backoff) when the last one dropped. */
  async connection(): Promise<Client> {
    if (this.closed) throw new HostConnectionError(this.label, "connection closed");
    if (this.client) return this.client;
    this.connecting ??= this.dial().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** A channel running `command`, its stdin and stdout as one stream (e.g. `docker system dial-stdio`). */
  async open(command: string): Promise<ClientChannel> {
    return this.links
      .session(
        (client) =>
          new Promise<ClientChannel>((resolve, reject) =>
            client.exec(command, (err, channel) => (err ? reject(err) : resolve(channel))),
          ),
        refusedSession,
      )
      .catch((err: Error) => {
        throw err instanceof HostConnectionError ? err : this.failure(err);
      });
  }

  /** A TCP connection from the host to `hostname:port` (an address only the host may reach). */
  async forwardOut(hostname: string, port: number): Promise<Duplex> {
    const client = await this.connection();
    return new Promise((resolve, reject) =>
      client.forwardOut("127.0.0.1", 0, hostname, port, (err, channel) =>
        err ? reject(this.failure(err)) : resolve(channel),
      ),
    );
  }

  /** The connection's SFTP session, opened on first use and again after a drop. */
  sftp(): Promise<SFTPWrapper> {
    this.sftpSession ??= this.links
      .session(
        (client) =>
          new Promise<SFTPWrapper>((resolve, reject) =>
            client.sftp((err, sftp) => {
              if (err) return reject(err);
              // A dropped connection ends the session; the next call opens a new one.
              sftp.once("close", () => (this.sftpSession = undefined));
              resolve(sftp);
            }),
          ),
        refusedSession,
      )
      .catch((err: Error) => {
        if (err instanceof HostConnectionError) throw err;
        throw new HostConnectionError(this.label, `sftp: ${err.message}`, { cause: err });
      });
    this.sftpSession.catch(() => (this.sftpSession = undefined));
    return this.sftpSession;
  }

  /** Closes the connection; later use fails. */
  close(): void {
    this.closed = true;
    this.links.close();
    this.client?.end();
    this.client = undefined;
  }

  private async dial(): Promise<Client> {
    for (;;) {
      try {
        const client = await this.handshake();
        this.failures = 0;
        this.everConnected = true;
        this.client = client;
        client.on("close", () => {
          if (this.client === client) this.client = undefined;
        });
        return client;
      } catch (err) {
        this.failures++;
        // The first connection fails fast and clearly; later ones retry (the host may be restarting).
        if (!this.everConnected || this.closed || this.failures > 6) throw err;
        const backoff = Math.min(MAX_BACKOFF_MS, 200 * 2 ** (this.failures - 1));
        logger.info(
          { host: this.label, backoff, err: (err as Error).message },
          "ssh reconnect failed; retrying",
        );
        await sleep(backoff);
      }
    }
  }

  private handshake(): Promise<Client> {
    const client = new Client();
    return new Promise((resolve, reject) => {
      let hostKeyProblem: string | undefined;
      client.once("ready", () => resolve(client));
      client.once("error", (err) => {
        client.end();
        reject(this.failure(err, hostKeyProblem));
      });
      client.connect({
        ...this.connectConfig(),
        hostVerifier: (key: Buffer) => {
          hostKeyProblem = this.verifyHostKey(key);
          return hostKeyProblem === undefined;
        },
      });
    });
  }

  private connectConfig(): ConnectConfig {
    const { address, options } = this;
    const keyFile = [...keyFilesOf(options), ...address.identityFiles, ...DEFAULT_KEYS].find((f) =>
      existsSync(f),
    );
    const agent = options.agent ?? process.env.SSH_AUTH_SOCK;
    return {
      host: address.hostname,
      port: address.port,
      username: address.user,
      readyTimeout: options.connectTimeoutMs ?? 10_000,
      keepaliveInterval: 5_000,
      keepaliveCountMax: 3,
      ...(keyFile ? { privateKey: readFileSync(keyFile) } : {}),
      ...(agent ? { agent } : {}),
    };
  }

  /** undefined when the key is trusted; else why not. */
  private verifyHostKey(key: Buffer): string | undefined {
    const file = this.options.knownHostsFile ?? join(homedir(), ".ssh", "known_hosts");
    const name = knownHostsName(this.address.hostname, this.address.port);
    const verdict = checkHostKey(file, name, key);
    if (verdict === "match") return undefined;
    if (verdict === "mismatch") {
      return `host key differs from the one in ${file}: possible man-in-the-middle (if the host was reinstalled: ssh-keygen -R "${name}")`;
    }
    if (this.options.acceptNewHostKeys) {
      addHostKey(file, name, keyType(key), key);
      return undefined;
    }
    return `host key unknown: not in ${file} (add it with ssh-keyscan -p ${this.address.port} ${this.address.hostname} >> ${file}, or set acceptNewHostKeys)`;
  }

  private failure(err: Error, hostKeyProblem?: string): HostConnectionError {
    const code = (err as { code?: string }).code;
    const level = (err as { level?: string }).level;
    let cause = err.message;
    if (hostKeyProblem) cause = hostKeyProblem;
    else if (code === "ECONNREFUSED")
      cause = `connection refused (is sshd listening on port ${this.address.port}?)`;
    else if (code === "ENOTFOUND" || code === "EAI_AGAIN")
      cause = `unknown host name ${this.address.hostname}`;
    else if (level === "client-authentication")
      cause = `authentication failed for user ${this.address.user} (check the key, the agent and authorized_keys)`;
    else if (/Timed out while waiting for handshake/.test(err.message))
      cause = `no SSH answer within ${this.options.connectTimeoutMs ?? 10_000} ms`;
    return new HostConnectionError(this.label, cause, { cause: err });
  }
}

/** Whether the server refused to open a session channel (as OpenSSH does past `MaxSessions`). */
function refusedSession(err: unknown): boolean {
  return err instanceof Error && /Channel open failure/i.test(err.message);
}

/** The key type named inside an SSH public key blob. */
function keyType(blob: Buffer): string {
  const length = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + length).toString("ascii");
}
