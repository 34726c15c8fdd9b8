#!/usr/bin/env node
/**
 * `afs`: the command line of affinetes. Exit codes: 0 ok, 1 failure, 2 usage,
 * 3 not found, 4 timeout (see exit-codes.ts).
 */
import { runCli } from "./run-cli.js";

await runCli(process.argv.slice(2));
