import { examplePath } from "../helpers/paths.js";
import { afsSuite } from "./afs-suite.js";

afsSuite({
  mode: "process",
  runArgs: (name) => ["run", "--dir", examplePath("actor"), "--mode", "process", "--name", name],
});
