import { processIsAlive } from "../../src/runtime/labels.js";
import { examplePath } from "../helpers/paths.js";
import { loadEnvSuite } from "./load-env-suite.js";

loadEnvSuite({
  mode: "process",
  options: (example, extra) => ({ envPath: examplePath(example), mode: "process", ...extra }),
  exists: async (id) => processIsAlive(Number(id.replace("process-", ""))),
});
