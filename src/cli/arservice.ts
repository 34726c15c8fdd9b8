#!/usr/bin/env node
/** `arservice`: the rollout service under the name of the Agent Rollout Service; `afs serve` with the same flags. */
import { runCli } from "./run-cli.js";

await runCli(["serve", ...process.argv.slice(2)]);
