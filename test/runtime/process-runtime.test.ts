import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProcessRuntime } from "../../src/index.js";
import { examplePath, fixturePath } from "../helpers/paths.js";
import { runtimeConformance } from "./conformance.js";

runtimeConformance({
  name: "process",
  runtime: async () => new ProcessRuntime(),
  spec: (overrides) => ({ envName: "calculator", envPath: examplePath("calculator"), ...overrides }),
  brokenSpec: () => ({ envName: "broken", envPath: fixturePath("broken-env") }),
  sandboxSpec: (workdir) => ({ envName: "sandbox", serve: false, workdir }),
  sandboxWorkdir: () => mkdtempSync(join(tmpdir(), "affinetes-sandbox-")),
});
