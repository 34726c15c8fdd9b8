import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

// Shared with the leak check, which runs in this process.
const stateDir = mkdtempSync(join(tmpdir(), "affinetes-test-state-"));
process.env.AFFINETES_TEST_STATE_DIR = stateDir;

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/leak-check.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Tests start real processes and containers: keep the 2-core machine responsive.
    maxWorkers: 2,
    env: {
      // Tests never touch the user's own state, and build from a local base image.
      AFFINETES_STATE_DIR: stateDir,
      AFFINETES_BASE_IMAGE: process.env.AFFINETES_BASE_IMAGE ?? "affinetes/python:3.11",
    },
  },
});
