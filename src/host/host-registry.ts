import type { HostOptions, SshAddress } from "./ssh-connection.js";
import { SshConnection, keyFilesOf } from "./ssh-connection.js";

interface Entry {
  key: string;
  users: number;
}

/**
 * One SSH connection per host in this process, shared by everything that uses the host
 * (Docker API, tunnels, deploy, SFTP), and closed when the last of them lets go (so a
 * finished script exits). A host reached with other keys or another known_hosts policy
 * gets a connection of its own: a stricter check never rides on a laxer one's connection.
 */
export class ConnectionRegistry {
  private readonly byKey = new Map<string, SshConnection>();
  private readonly entries = new Map<SshConnection, Entry>();

  /** The shared connection for `address` (opened on first use), counted as one more user. */
  acquire(address: SshAddress, options: HostOptions = {}): SshConnection {
    const key = registryKey(address, options);
    const held = this.byKey.get(key);
    if (held) return this.share(held);
    const connection = new SshConnection(address, options);
    this.byKey.set(key, connection);
    this.entries.set(connection, { key, users: 1 });
    return connection;
  }

  /** One more user of a connection already held. */
  share(connection: SshConnection): SshConnection {
    const entry = this.entries.get(connection);
    if (entry) entry.users++;
    return connection;
  }

  /** One user fewer; the connection closes with the last. */
  release(connection: SshConnection): void {
    const entry = this.entries.get(connection);
    if (!entry || --entry.users > 0) return;
    this.entries.delete(connection);
    this.byKey.delete(entry.key);
    connection.close();
  }

  /** How many connections are held (open, or to be opened on first use). */
  get size(): number {
    return this.entries.size;
  }
}

/** What makes two uses of a host share a connection: the address and how it is trusted. */
function registryKey(address: SshAddress, options: HostOptions): string {
  const trust = [
    keyFilesOf(options),
    address.identityFiles,
    options.agent,
    options.knownHostsFile,
    options.acceptNewHostKeys,
  ];
  return `${address.label} ${JSON.stringify(trust)}`;
}

/** The process-wide registry: one connection per host, as the architecture requires. */
export const sharedConnections = new ConnectionRegistry();
