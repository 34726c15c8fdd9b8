import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ValidationError } from "../../src/index.js";
import { parseHostAddress } from "../../src/host/host-address.js";
import { checkHostKey, knownHostsName } from "../../src/host/known-hosts.js";
import { createHmac } from "node:crypto";

describe("host addresses", () => {
  const config = join(mkdtempSync(join(tmpdir(), "affinetes-sshconfig-")), "config");
  writeFileSync(
    config,
    [
      "Host gpu-box",
      "  HostName 10.1.2.3",
      "  User alice",
      "  Port 2200",
      "  IdentityFile ~/.ssh/gpu_key",
      "",
      "Host *",
      "  User bob",
      "",
    ].join("\n"),
  );

  it("parses local and ssh forms", () => {
    expect(parseHostAddress("localhost", "hosts", config)).toEqual({ kind: "local" });
    expect(parseHostAddress("ssh://root@127.0.0.2:2222", "hosts", config)).toMatchObject({
      kind: "ssh",
      user: "root",
      hostname: "127.0.0.2",
      port: 2222,
      label: "ssh://root@127.0.0.2:2222",
    });
    expect(parseHostAddress("carol@example.org", "hosts", config)).toMatchObject({ user: "carol", port: 22 });
  });

  it("fills what the address leaves out from ~/.ssh/config (HostName, User, Port, IdentityFile)", () => {
    const host = parseHostAddress("gpu-box", "hosts", config);
    expect(host).toMatchObject({ kind: "ssh", hostname: "10.1.2.3", user: "alice", port: 2200 });
    expect(host.kind === "ssh" && host.identityFiles[0]).toMatch(/\.ssh\/gpu_key$/);
    expect(parseHostAddress("dave@gpu-box:2201", "hosts", config)).toMatchObject({
      user: "dave",
      port: 2201,
    });
    expect(parseHostAddress("other-host", "hosts", config)).toMatchObject({
      user: "bob",
      hostname: "other-host",
    });
  });

  it("rejects what is not a host, naming the option", () => {
    for (const bad of ["", "http://x", "a b", "user@host:99999"]) {
      expect(() => parseHostAddress(bad, "hosts.0", config)).toThrow(ValidationError);
    }
  });
});

describe("known_hosts", () => {
  const key = Buffer.from("AAAAC3NzaC1lZDI1NTE5AAAAIKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKey", "base64");
  const other = Buffer.from("AAAAC3NzaC1lZDI1NTE5AAAAIOtherOtherOtherOtherOtherOtherOtherOther", "base64");
  const file = join(mkdtempSync(join(tmpdir(), "affinetes-kh-")), "known_hosts");

  it("matches plain and hashed entries, and tells a changed key from an unknown host", () => {
    const name = knownHostsName("127.0.0.2", 2222);
    expect(name).toBe("[127.0.0.2]:2222");
    const salt = Buffer.from("0123456789abcdefghij");
    const hashed = `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update("hashed.example").digest("base64")}`;
    writeFileSync(
      file,
      `# comment\n${name} ssh-ed25519 ${key.toString("base64")}\n${hashed} ssh-ed25519 ${key.toString("base64")}\n`,
    );
    expect(checkHostKey(file, name, key)).toBe("match");
    expect(checkHostKey(file, name, other)).toBe("mismatch");
    expect(checkHostKey(file, "hashed.example", key)).toBe("match");
    expect(checkHostKey(file, "unknown.example", key)).toBe("unknown");
    expect(checkHostKey(join(file, "missing"), name, key)).toBe("unknown");
  });
});
