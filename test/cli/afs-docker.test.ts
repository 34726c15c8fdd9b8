import { describe } from "vitest";
import { hasDocker } from "../helpers/docker.js";
import { examplePath } from "../helpers/paths.js";
import { afsSuite } from "./afs-suite.js";

describe.skipIf(!hasDocker)("docker", () => {
  afsSuite({
    mode: "docker",
    // --dir builds the image first (progress on stderr), then runs two replicas.
    runArgs: (name) => [
      "run",
      "--dir",
      examplePath("actor"),
      "--tag",
      "affinetes-test/actor-cli:latest",
      "--name",
      name,
      "--replicas",
      "2",
    ],
  });
});
