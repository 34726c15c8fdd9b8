import { randomBytes } from "node:crypto";
import { AUTH_TOKEN_VARIABLE } from "../server/server-files.js";

/**
 * A new per-instance token for a method server: 256 random bits, URL-safe, so it travels
 * in an environment variable and an `Authorization: Bearer` header as is.
 */
export function newAuthToken(): string {
  return randomBytes(32).toString("base64url");
}

/** The request headers that carry `token` (none without one). */
export function authHeaders(token: string | undefined): Readonly<Record<string, string>> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/**
 * The token an instance's server is started with: the spec's own, else one the caller put
 * in its environment variables (`AFFINETES_AUTH_TOKEN`), so both ways agree with what the
 * runtime records.
 */
export function instanceToken(spec: {
  authToken?: string | undefined;
  envVars?: Readonly<Record<string, string>> | undefined;
}): string | undefined {
  return spec.authToken || spec.envVars?.[AUTH_TOKEN_VARIABLE] || undefined;
}
