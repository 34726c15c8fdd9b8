import { describe, expect, it } from "vitest";
import { ValidationError } from "../../src/errors.js";
import {
  egressRules,
  parseAllowEntry,
  parseNetworkPolicy,
  resolveNetworkPolicy,
} from "../../src/runtime/network-policy.js";

describe("network policy", () => {
  it("parses allowlist entries strictly", () => {
    expect(parseAllowEntry("10.0.0.5")).toEqual({ host: "10.0.0.5", prefix: 32, port: undefined });
    expect(parseAllowEntry("10.0.0.0/24:443")).toEqual({ host: "10.0.0.0", prefix: 24, port: 443 });
    expect(parseAllowEntry("localhost:8080")).toEqual({ host: "localhost", prefix: undefined, port: 8080 });
    for (const bad of ["10.0.0.300", "10.0.0.0/40", "host:0", "host:70000", "a b", "", "-x.com", "h/24"])
      expect(() => parseAllowEntry(bad), bad).toThrow();
  });

  it("validates the policy's shape with the option's name", () => {
    expect(parseNetworkPolicy("none")).toBe("none");
    expect(parseNetworkPolicy({ allow: ["1.2.3.4:80"] })).toEqual({ allow: ["1.2.3.4:80"] });
    expect(() => parseNetworkPolicy("open")).toThrow(ValidationError);
    expect(() => parseNetworkPolicy({ allow: ["1.2.3.4:99999"] }, "environment_config.network")).toThrow(
      /environment_config\.network|port/,
    );
    expect(() => parseNetworkPolicy({ allow: [], deny: [] })).toThrow(/deny/);
  });

  it("resolves names once, and refuses one that does not resolve", async () => {
    const resolved = await resolveNetworkPolicy({ allow: ["localhost:80", "10.1.0.0/16"] });
    expect(resolved).toEqual({
      kind: "allow",
      destinations: [
        { cidr: "127.0.0.1/32", port: 80 },
        { cidr: "10.1.0.0/16", port: undefined },
      ],
    });
    await expect(resolveNetworkPolicy({ allow: ["no-such-host.invalid"] })).rejects.toThrow(ValidationError);
    expect(await resolveNetworkPolicy(undefined)).toEqual({ kind: "full" });
  });

  it("renders rules that drop by default and open only what is asked", () => {
    expect(egressRules({ kind: "full" })).toBe("");
    const none = egressRules({ kind: "none" }, [8000]);
    expect(none).toContain(":OUTPUT DROP");
    expect(none).toContain("-A INPUT -p tcp --dport 8000 -j ACCEPT");
    expect(none).not.toMatch(/-A OUTPUT -d /);
    const allow = egressRules({ kind: "allow", destinations: [{ cidr: "10.0.0.1/32", port: 443 }] });
    expect(allow).toContain("-A OUTPUT -d 10.0.0.1/32 -p tcp --dport 443 -j ACCEPT");
    expect(allow.trimEnd().endsWith("COMMIT")).toBe(true);
  });
});
