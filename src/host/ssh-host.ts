import { shellQuote } from "../util/shell-quote.js";
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Client } from "ssh2";
import type { ClientChannel, ConnectConfig } from "ssh2";
import { AbortedError, HostConnectionError, ValidationError } from "../errors.js";
import { logger } from "../logger.js";
import type { ExecOptions, ExecResult } from "../util/exec-result.js";
import { TIMEOUT_EXIT_CODE } from "../util/run-command.js";
import { CommandEnd, KILL_WAIT_MS, SETTLE_AFTER_KILL_MS, atMost } from "../util/command-end.js";
import { timerDelay } from "../util/deadline.js";
import { OutputCap } from "../util/output-cap.js";
import { COMMAND_TAG_VARIABLE, KILL_TAGGED_SCRIPT, tagCommand } from "../util/tagged-processes.js";
import type { HostAddress } from "./host-address.js";
import { parseHostAddress } from "./host-address.js";
import { addHostKey, checkHostKey, knownHostsName } from "./known-hosts.js";

/** How to reach and trust an SSH host. */
export interface SshHostOptions {
  /** Private key files; default: IdentityFile of ~/.ssh/config, else ~/.ssh/id_ed25519, id_ecdsa, id_rsa. */
  keyFiles?: string[];
  /** ssh-agent socket; default `SSH_AUTH_SOCK`. */
  agent?: string;
  /** default ~/.ssh/known_hosts */
  knownHostsFile?: string;
  /** Trust and record a host key seen for the first time (a changed key is always refused). */
  acceptNewHostKeys?: boolean;
  /** Bound on connecting and authenticating (default 10 000 ms). */
  connectTimeoutMs?: number;
}

type SshAddress = Extract<HostAddress, { kind: "ssh" }>;

const DEFAULT_KEYS = ["id_ed25519", "id_ecdsa", "id_rsa"].map((k) => join(homedir(), ".ssh", k));
const MAX_BACKOFF_MS = 5_000;

/**
 * One persistent SSH connection to a host, shared by everything that talks to it:
 * commands, the Docker API (`docker system dial-stdio` channels) and tunnels
 * (`forwardOut`). A dropped connection is re-established on next use, with backoff;
 * `reconnected` is emitted then.
 */
export class SshHost extends EventEmitter {
  readonly label: string;
  private client: Client | undefined;
  private connecting: Promise<Client> | undefined;
  private failures = 0;
  private closed = false;

  private constructor(
    readonly address: SshAddress,
    private readonly options: SshHostOptions,
  ) {
    super();
    this.label = address.label;
  }

  /** Connects (and authenticates) once, so a wrong user, key or address fails here, clearly. */
  static async connect(spec: string | HostAddress, options: SshHostOptions = {}): Promise<SshHost> {
    const address = typeof spec === "string" ? parseHostAddress(spec, "host") : spec;
    if (address.kind !== "ssh") throw new ValidationError("host", "SshHost needs an ssh:// address");
    const host = new SshHost(address, options);
    await host.connection();
    return host;
  }

  /** A host whose connection opens on first use (the registry shares these). */
  static lazy(address: SshAddress, options: SshHostOptions = {}): SshHost {
    return new SshHost(address, options);
  }

  /** The live client, connecting again (with backoff) when the last one dropped. */
  async connection(): Promise<Client> {
    if (this.closed) throw new HostConnectionError(this.label, "connection closed");
    if (this.client) return this.client;
    this.connecting ??= this.dial().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /**
   * Runs a command on the host; `cwd` and `env` apply to it. Past `timeoutMs` (or on an
   * abort) the command and everything it started are killed (see `killCommand`) and the
   * call returns within a second, whatever the command left behind. A command that exits
   * leaving a background process holding its output returns once that output has been
   * quiet briefly (see `CommandEnd`); the channel is then closed.
   */
  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const tag = randomUUID();
    const channel = await this.open(tagged(tag, wrapCommand(command, options)));
    const end = new CommandEnd();
    const stdout = new OutputCap(options.maxOutputBytes);
    const stderr = new OutputCap(options.maxOutputBytes);
    channel.on("data", (d: Buffer) => {
      stdout.push(d);
      end.output();
    });
    channel.stderr.on("data", (d: Buffer) => {
      stderr.push(d);
      end.output();
    });
    let code = -1;
    // sshd reports the exit status when the shell exits, before its output closes
    channel.once("exit", (c: number | null) => {
      code = c ?? -1;
      end.exited();
    });
    channel.once("close", () => end.closed());
    let timedOut = false;
    let killing: Promise<void> | undefined;
    const stop = () => {
      killing ??= atMost(this.killCommand(tag), KILL_WAIT_MS).then(() => end.limit(SETTLE_AFTER_KILL_MS));
    };
    const timer =
      options.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            stop();
          }, timerDelay(options.timeoutMs))
        : undefined;
    options.signal?.addEventListener("abort", stop, { once: true });
    try {
      await end.ended;
      await killing;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", stop);
      channel.close(); // frees the session slot a background process would hold
    }
    if (options.signal?.aborted) throw new AbortedError("command", { cause: options.signal.reason });
    return {
      stdout: stdout.text(),
      stderr: stderr.text(),
      exitCode: timedOut ? TIMEOUT_EXIT_CODE : code,
      timedOut,
      truncated: stdout.truncated || stderr.truncated || end.cutShort,
    };
  }

  /**
   * Stops a command started with `tagged(tag, ...)` and everything it started; its
   * channel is closed once they are gone (or the kill gave up), so whoever waits for the
   * channel's end gets it.
   */
  killTagged(tag: string, channel?: ClientChannel): void {
    void atMost(this.killCommand(tag), KILL_WAIT_MS).then(() =>
      setTimeout(() => channel?.close(), SETTLE_AFTER_KILL_MS).unref(),
    );
  }

  /**
   * Kills, on the host, the processes of a command started with `tagged(tag, ...)`. sshd
   * does not act on a channel's KILL signal (nor end the channel before the command
   * exits), so this is a second command (Linux hosts: /proc): see `killTaggedScript`.
   */
  async killCommand(tag: string): Promise<void> {
    await this.exec(killTaggedScript(tag));
  }

  /** A channel running `command`, its stdin and stdout as one stream (e.g. `docker system dial-stdio`). */
  async open(command: string): Promise<ClientChannel> {
    const client = await this.connection();
    return new Promise((resolve, reject) =>
      client.exec(command, (err, channel) => (err ? reject(this.failure(err)) : resolve(channel))),
    );
  }

  /** A TCP connection from the host to `hostname:port` (an address only the host may reach). */
  async forwardOut(hostname: string, port: number): Promise<ClientChannel> {
    const client = await this.connection();
    return new Promise((resolve, reject) =>
      client.forwardOut("127.0.0.1", 0, hostname, port, (err, channel) =>
        err ? reject(this.failure(err)) : resolve(channel),
      ),
    );
  }

  /** Closes the connection; later use fails. */
  close(): void {
    this.closed = true;
    this.client?.end();
    this.client = undefined;
    this.removeAllListeners();
  }

  private async dial(): Promise<Client> {
    for (;;) {
      try {
        const client = await this.handshake();
        const reconnected = this.failures > 0 || this.everConnected;
        this.failures = 0;
        this.everConnected = true;
        this.client = client;
        client.on("close", () => {
          if (this.client === client) this.client = undefined;
        });
        if (reconnected) this.emit("reconnected");
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

  private everConnected = false;

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
    const keyFile = [...(options.keyFiles ?? []), ...address.identityFiles, ...DEFAULT_KEYS].find((f) =>
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

/** The key type named inside an SSH public key blob. */
function keyType(blob: Buffer): string {
  const length = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + length).toString("ascii");
}

/** The variable marking every process of one command (children inherit it). */
export { COMMAND_TAG_VARIABLE };

/** `command` with every process it starts marked by `tag`, so `killTagged` finds them all. */
export const tagged = tagCommand;

/**
 * Kills, on the host, a tagged command: its processes, found by the tag in their
 * environment or command line (see `KILL_TAGGED_SCRIPT`: stopped, then killed, so none
 * forks away meanwhile), then whatever is left in their sessions, and the containers it
 * ran (a deployed docker workspace's: killing their client leaves them running).
 */
function killTaggedScript(tag: string): string {
  return [
    // the pair is never spelled out in a command line here: the kill would find itself
    `n=${COMMAND_TAG_VARIABLE}; v=${shellQuote(tag)}; me=$(ps -o sid= -p $$ | tr -d ' ');`,
    // GNU grep: -z reads NUL-separated variables
    `pids=$(printf '%s=%s\\n' "$n" "$v" | grep -lzFf - /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | sed 's#/proc/##; s#/[a-z]*$##' | sort -u);`,
    `sessions=$([ -n "$pids" ] && ps -o sid= -p "$(echo $pids | tr ' ' ,)" | sort -u);`,
    `sh -c ${shellQuote(KILL_TAGGED_SCRIPT)} sh "$n" "$v";`,
    // what dropped the tag but stayed in a session of the command's
    `for s in $sessions; do [ "$s" -gt 1 ] && [ "$s" != "$me" ] && pkill -KILL -s "$s"; done;`,
    `command -v docker >/dev/null 2>&1 && docker ps -aq --filter label=affinetes.deploy.owner="$v" | xargs -r docker rm -f >/dev/null 2>&1; true`,
  ].join(" ");
}

/** `command` with `env` exported and run in `cwd`; a variable name the shell cannot take is refused. */
export function wrapCommand(command: string, options: Pick<ExecOptions, "cwd" | "env">): string {
  const env = Object.entries(options.env ?? {})
    .map(([k, v]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new ValidationError("env", `invalid variable name ${k}`);
      return `export ${k}=${shellQuote(v)}; `;
    })
    .join("");
  const cd = options.cwd ? `cd ${shellQuote(options.cwd)} && ` : "";
  return `${env}${cd}${command}`;
}
