import { describe, expect, it } from "vitest";
import { ValidationError, loadEnv, buildImageFromEnv } from "../../src/index.js";
import { examplePath } from "../helpers/paths.js";

/** Invalid options fail fast, before anything starts, with a typed error naming the option. */
describe("loadEnv option validation", () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["nothing to run", {}, /image.*give an image or an envPath/],
    ["unknown option (typo)", { image: "x:1", memLimt: "1g" }, /"memLimt".*unknown option/],
    ["bad mode", { image: "x:1", mode: "kubernetes" }, /"mode"/],
    ["process without envPath", { image: "x:1", mode: "process" }, /"envPath"/],
    ["bad image reference", { image: "Not An Image" }, /"image"/],
    ["bad memLimit", { image: "x:1", memLimit: "lots" }, /"memLimit"/],
    ["bad envVars", { image: "x:1", envVars: { A: 1 } }, /"envVars\.A"/],
    ["bad envType", { image: "x:1", envType: "grpc" }, /"envType"/],
    ["zero replicas", { image: "x:1", replicas: 0 }, /"replicas"/],
    ["fractional replicas", { image: "x:1", replicas: 2.5 }, /"replicas"/],
    ["bad cpuLimit", { image: "x:1", cpuLimit: "lots" }, /"cpuLimit".*cores/],
    ["negative cpuLimit", { image: "x:1", cpuLimit: -1 }, /"cpuLimit"/],
    ["bad host", { image: "x:1", hosts: ["not a host!"] }, /"hosts\.0"/],
    ["bad loadBalance", { image: "x:1", loadBalance: "fastest" }, /"loadBalance"/],
    ["bad callTimeoutMs", { image: "x:1", callTimeoutMs: -5 }, /"callTimeoutMs"/],
    ["bad cleanup", { image: "x:1", cleanup: "no" }, /"cleanup"/],
  ];

  for (const [title, options, message] of cases) {
    it(`rejects ${title}`, async () => {
      const error = await loadEnv(options as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as Error).message).toMatch(message);
    });
  }

  it("rejects an invalid containerName before starting anything", async () => {
    const error = await loadEnv({
      envPath: examplePath("calculator"),
      mode: "process",
      containerName: "bad name!",
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).option).toBe("containerName");
  });

  it("buildImageFromEnv validates its options too", async () => {
    await expect(
      buildImageFromEnv({ envPath: examplePath("calculator"), imageTag: "UPPER:case" }),
    ).rejects.toThrow(/"imageTag"/);
    await expect(buildImageFromEnv({ envPath: "/nonexistent", imageTag: "x:1" })).rejects.toThrow(/envPath/);
  });
});
