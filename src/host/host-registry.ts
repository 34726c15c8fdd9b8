import type { HostAddress } from "./host-address.js";
import { parseHostAddress } from "./host-address.js";
import type { SshHostOptions } from "./ssh-host.js";
import { SshHost } from "./ssh-host.js";

/**
 * One SSH connection per host in this process, shared by every runtime, instance and
 * tunnel that uses the host, and closed when the last of them lets go (so a finished
 * script exits).
 */
export class HostRegistry {
  private readonly entries = new Map<string, { host: SshHost; users: number }>();

  /** The shared host for `spec`, counted as one more user. */
  acquire(spec: string | Extract<HostAddress, { kind: "ssh" }>, options: SshHostOptions = {}): SshHost {
    const address = typeof spec === "string" ? parseHostAddress(spec, "host") : spec;
    if (address.kind !== "ssh") throw new Error("HostRegistry holds ssh hosts only");
    const entry = this.entries.get(address.label);
    if (entry) {
      entry.users++;
      return entry.host;
    }
    const host = SshHost.lazy(address, options);
    this.entries.set(address.label, { host, users: 1 });
    return host;
  }

  /** One user fewer; the connection closes with the last. */
  release(host: SshHost): void {
    const entry = this.entries.get(host.label);
    if (!entry || entry.host !== host) return;
    if (--entry.users > 0) return;
    this.entries.delete(host.label);
    host.close();
  }
}

/** The process-wide registry: one connection per host, as the architecture requires. */
export const sharedHosts = new HostRegistry();
