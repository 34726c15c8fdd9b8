import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import SSHConfig from "ssh-config";
import { ValidationError } from "../errors.js";

/** Where commands run: this machine, or a machine over SSH. */
export type HostAddress =
  | { kind: "local" }
  | { kind: "ssh"; user: string; hostname: string; port: number; identityFiles: string[]; label: string };

/**
 * Parses `localhost`, `ssh://user@host[:port]`, `user@host[:port]` or a `~/.ssh/config`
 * alias. Entries of `~/.ssh/config` (HostName, User, Port, IdentityFile) fill what the
 * address leaves out.
 */
export function parseHostAddress(
  spec: string,
  option = "hosts",
  sshConfigPath = join(homedir(), ".ssh", "config"),
): HostAddress {
  const text = spec.trim();
  if (text === "localhost" || text === "local") return { kind: "local" };
  const match = /^(?:ssh:\/\/)?(?:([^@/:\s]+)@)?([^@/:\s]+|\[[0-9a-fA-F:]+\])(?::(\d+))?\/?$/.exec(text);
  if (!match) {
    throw new ValidationError(
      option,
      `${JSON.stringify(spec)} is not a host: use "localhost", "ssh://user@host:port" or a ~/.ssh/config name`,
    );
  }
  const [, user, host = "", port] = match;
  const config = sshConfigFor(host, sshConfigPath);
  const portNumber = Number(port ?? config.Port ?? 22);
  if (!Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535) {
    throw new ValidationError(option, `invalid port in ${JSON.stringify(spec)}`);
  }
  const hostname = (config.HostName ?? host).replace(/^\[|\]$/g, "");
  const resolvedUser = user ?? config.User ?? process.env.USER ?? "root";
  return {
    kind: "ssh",
    user: resolvedUser,
    hostname,
    port: portNumber,
    identityFiles: (config.IdentityFile ?? []).map(expandHome),
    label: `ssh://${resolvedUser}@${hostname}:${portNumber}`,
  };
}

interface SshConfigEntry {
  HostName?: string;
  User?: string;
  Port?: string;
  IdentityFile?: string[];
}

function sshConfigFor(host: string, path: string): SshConfigEntry {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return {};
  }
  const computed = SSHConfig.parse(text).compute(host) as Record<string, string | string[]>;
  const one = (key: string) => {
    const value = computed[key];
    return Array.isArray(value) ? value[0] : value;
  };
  const identity = computed.IdentityFile;
  return {
    ...(one("HostName") ? { HostName: one("HostName") } : {}),
    ...(one("User") ? { User: one("User") } : {}),
    ...(one("Port") ? { Port: one("Port") } : {}),
    ...(identity ? { IdentityFile: Array.isArray(identity) ? identity : [identity] } : {}),
  };
}

function expandHome(path: string): string {
  return path.startsWith("~/") ? join(homedir(), path.slice(2)) : path;
}
