import { describe, expect, it } from "vitest";
import { networkOf } from "../../src/runtime/docker/apply-network-policy.js";
import { missingPrerequisite, netnsRulesScript } from "../../src/runtime/docker/netns-rules-script.js";
import {
  NETWORK_LABEL,
  isSealed,
  planHostConfig,
  planLabel,
  planNetwork,
  planOf,
  samePolicy,
  waitForNetwork,
} from "../../src/runtime/docker/network-plan.js";
import { egressRules } from "../../src/runtime/network-policy.js";
import { dockerJobScript } from "../../src/runtime/slurm/job-script.js";

describe("docker network plans", () => {
  it("needs nothing for full; seals a none sandbox; opens a serving one's ports", async () => {
    expect(await planNetwork({ envName: "e" })).toBeUndefined();
    expect(await planNetwork({ envName: "e", network: "full" })).toBeUndefined();
    const sandbox = await planNetwork({ envName: "e", serve: false, network: "none" });
    expect(sandbox && isSealed(sandbox)).toBe(true);
    const serving = await planNetwork({ envName: "e", network: "none", ports: [9000] });
    expect(serving).toMatchObject({ resolved: { kind: "none" }, openPorts: [8000, 9000] });
    expect(serving && isSealed(serving)).toBe(false);
  });

  it("resolves an allowlist's names once, recording them for /etc/hosts", async () => {
    const plan = await planNetwork({
      envName: "e",
      serve: false,
      network: { allow: ["localhost:80", "10.0.0.0/8"] },
    });
    expect(plan).toEqual({
      policy: { allow: ["localhost:80", "10.0.0.0/8"] },
      resolved: {
        kind: "allow",
        destinations: [
          { cidr: "127.0.0.1/32", port: 80 },
          { cidr: "10.0.0.0/8", port: undefined },
        ],
      },
      openPorts: [],
      hosts: ["localhost:127.0.0.1"],
    });
  });

  it("round-trips through its label, and compares policies as asked", async () => {
    const plan = await planNetwork({ envName: "e", network: { allow: ["10.1.2.3:443"] } });
    if (!plan) throw new Error("no plan");
    const labels = { [NETWORK_LABEL]: planLabel(plan) };
    expect(planOf(labels)).toEqual(plan);
    expect(planOf({ [NETWORK_LABEL]: "{not json" })).toBeUndefined();
    expect(planOf({})).toBeUndefined();
    expect(samePolicy(plan, { allow: ["10.1.2.3:443"] })).toBe(true);
    expect(samePolicy(plan, "none")).toBe(false);
    expect(samePolicy(undefined, undefined)).toBe(true);
    expect(samePolicy(undefined, "full")).toBe(true);
  });

  it("creates containers off the network, without raw sockets, never restarted by the engine", async () => {
    const plan = await planNetwork({ envName: "e", network: { allow: ["localhost"] } });
    if (!plan) throw new Error("no plan");
    expect(planHostConfig(plan)).toEqual({
      NetworkMode: "none",
      CapDrop: ["NET_RAW"],
      RestartPolicy: { Name: "no" },
      ExtraHosts: ["localhost:127.0.0.1"],
    });
    expect(waitForNetwork(["python3", "task.py"]).slice(-3)).toEqual(["sh", "python3", "task.py"]);
  });

  it("opens ports to the bridge's gateway only, or also beyond the bridge but never to its neighbours", () => {
    const bridge = { gateway: "172.17.0.1", subnet: "172.17.0.0/16" };
    const gatewayOnly = egressRules({ kind: "none" }, [8000], { bridge });
    expect(gatewayOnly).toContain("-A INPUT -s 172.17.0.1/32 -p tcp --dport 8000 -j ACCEPT");
    expect(gatewayOnly).not.toMatch(/-A INPUT -p tcp --dport 8000/);
    const beyond = egressRules({ kind: "none" }, [8000], { bridge: { ...bridge, fromBeyond: true } });
    const lines = beyond.split("\n");
    expect(lines.indexOf("-A INPUT -s 172.17.0.0/16 -j DROP")).toBeLessThan(
      lines.indexOf("-A INPUT -p tcp --dport 8000 -j ACCEPT"),
    );
    expect(egressRules({ kind: "none" }, [], { bridge })).not.toMatch(/-A INPUT -s/);
  });

  it("computes a bridge's network from an address and prefix", () => {
    expect(networkOf("172.17.0.5", 16)).toBe("172.17.0.0/16");
    expect(networkOf("172.31.0.9", 24)).toBe("172.31.0.0/24");
    expect(networkOf("10.1.2.3", 0)).toBe("0.0.0.0/0");
  });

  it("reports what a host lacks, from the script's own line", () => {
    const script = netnsRulesScript("'/run/netns/x'", "*filter\nCOMMIT\n");
    expect(script).toContain("nsenter --net='/run/netns/x' iptables-restore");
    expect(script).toContain("ip6tables-restore");
    expect(
      missingPrerequisite(
        "noise\naffinetes-network: this host cannot hold a network policy: nsenter is missing (x)\n",
      ),
    ).toBe("nsenter is missing (x)");
    expect(missingPrerequisite("affinetes-network: could not set")).toBeUndefined();
  });

  it("a Slurm job holds its container off the network until the rules are set; none alone needs no rules", async () => {
    const base = { container: "c", image: "img", serves: true, envKeys: [], labels: {} };
    expect(dockerJobScript(base)).not.toContain("--network none");
    const allow = await planNetwork({ envName: "e", network: { allow: ["10.0.0.1:80"] } });
    const script = dockerJobScript({ ...base, network: allow });
    expect(script).toContain("--network none --cap-drop NET_RAW");
    const order = ["docker run", "nsenter --net", "docker network connect bridge", 'touch "$net_file"'];
    const at = order.map((s) => script.indexOf(s));
    expect(at.every((i) => i >= 0)).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    const sealed = await planNetwork({ envName: "e", serve: false, network: "none" });
    const sealedScript = dockerJobScript({ ...base, serves: false, network: sealed });
    expect(sealedScript).toContain("--network none");
    expect(sealedScript).not.toContain("nsenter");
  });
});
