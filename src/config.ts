import { homedir } from "node:os";
import { join } from "node:path";

/** Base image used for environments without a Dockerfile (and passed as build arg `BASE_IMAGE`). */
export const DEFAULT_BASE_IMAGE = "python:3.12-slim";

/** Port the injected method server listens on inside a container. */
export const SERVER_PORT = 8000;

/**
 * The base image builds use: the `AFFINETES_BASE_IMAGE` setting when present (air-gapped
 * sites and CI point it at a local image), else the public default.
 */
export function configuredBaseImage(): string {
  return process.env.AFFINETES_BASE_IMAGE || DEFAULT_BASE_IMAGE;
}

/** Where affinetes keeps per-user state: `AFFINETES_STATE_DIR`, else the XDG state dir. */
export function stateDir(): string {
  if (process.env.AFFINETES_STATE_DIR) return process.env.AFFINETES_STATE_DIR;
  const base = process.env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return join(base, "affinetes");
}

/** The Python interpreter the process runtime uses: `AFFINETES_PYTHON`, else `python3`. */
export function configuredPython(): string {
  return process.env.AFFINETES_PYTHON || "python3";
}
