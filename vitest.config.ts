import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Tests start real processes and containers: keep the 2-core machine responsive.
    maxWorkers: 2,
    env: {
      // Tests never touch the user's own state, and build from a local base image.
      AFFINETES_STATE_DIR: mkdtempSync(join(tmpdir(), "affinetes-test-state-")),
      AFFINETES_BASE_IMAGE: process.env.AFFINETES_BASE_IMAGE ?? "affinetes/python:3.11",
    },
  },
});
