import { createHmac } from "node:crypto";
import { appendFileSync, readFileSync } from "node:fs";

/** What known_hosts says of a host's key. */
export type HostKeyVerdict = "match" | "mismatch" | "unknown";

/** The name known_hosts uses: `host`, or `[host]:port` off port 22. */
export function knownHostsName(hostname: string, port: number): string {
  return port === 22 ? hostname : `[${hostname}]:${port}`;
}

/**
 * Checks a presented host key (its wire blob) against a known_hosts file, hashed
 * entries (`|1|salt|hash`) included. A host listed with other keys only is a mismatch.
 */
export function checkHostKey(file: string, name: string, keyBlob: Buffer): HostKeyVerdict {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return "unknown";
  }
  const presented = keyBlob.toString("base64");
  let listed = false;
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 3 || fields[0]?.startsWith("#")) continue;
    const [hosts = "", , key] = fields[0]?.startsWith("@") ? fields.slice(1) : fields;
    if (!hosts.split(",").some((pattern) => nameMatches(pattern, name))) continue;
    listed = true;
    if (key === presented) return "match";
  }
  return listed ? "mismatch" : "unknown";
}

/** Records a new host key (what `StrictHostKeyChecking=accept-new` does). */
export function addHostKey(file: string, name: string, keyType: string, keyBlob: Buffer): void {
  appendFileSync(file, `${name} ${keyType} ${keyBlob.toString("base64")}\n`, { mode: 0o600 });
}

function nameMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith("|1|")) {
    const [, , salt = "", hash = ""] = pattern.split("|");
    return createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64") === hash;
  }
  return pattern === name;
}
