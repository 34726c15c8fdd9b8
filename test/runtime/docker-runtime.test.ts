import { describe } from "vitest";
import { DockerRuntime, buildImageFromEnv } from "../../src/index.js";
import { hasDocker } from "../helpers/docker.js";
import { examplePath, fixturePath } from "../helpers/paths.js";
import { runtimeConformance } from "./conformance.js";

const image = "affinetes-test/calculator:latest";
const broken = "affinetes-test/broken:latest";

describe.skipIf(!hasDocker)("docker runtime", () => {
  runtimeConformance({
    name: "docker",
    runtime: async () => {
      await buildImageFromEnv({ envPath: examplePath("calculator"), imageTag: image, quiet: true });
      await buildImageFromEnv({ envPath: fixturePath("broken-env"), imageTag: broken, quiet: true });
      return new DockerRuntime();
    },
    spec: (overrides) => ({ envName: "calculator", image, ...overrides }),
    brokenSpec: () => ({ envName: "broken", image: broken }),
    sandboxSpec: (workdir) => ({ envName: "sandbox", image, serve: false, workdir }),
    sandboxWorkdir: () => "/tmp",
  });
});
