import Docker from "dockerode";
import { describe } from "vitest";
import { buildImageFromEnv } from "../../src/index.js";
import { hasDocker } from "../helpers/docker.js";
import { examplePath } from "../helpers/paths.js";
import { loadEnvSuite } from "./load-env-suite.js";

const images = {
  calculator: "affinetes-test/calculator:latest",
  actor: "affinetes-test/actor:latest",
} as const;

describe.skipIf(!hasDocker)("docker", () => {
  loadEnvSuite({
    mode: "docker",
    setup: async () => {
      await Promise.all(
        Object.entries(images).map(([name, imageTag]) =>
          buildImageFromEnv({ envPath: examplePath(name), imageTag, quiet: true }),
        ),
      );
    },
    options: (example, extra) => ({ image: images[example], ...extra }),
    exists: async (id) =>
      new Docker()
        .getContainer(id)
        .inspect()
        .then(
          () => true,
          () => false,
        ),
  });
});
