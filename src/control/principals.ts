import { timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { z } from "zod";
import { ValidationError } from "../errors.js";
import { parseOptions } from "../util/validate.js";

/** Who a request acts for: the owner of its API key. */
export interface Principal {
  name: string;
  /** May see and change everything. */
  admin: boolean;
}

/** Without any key configured (loopback only), every request acts for this one. */
export const ANONYMOUS: Principal = { name: "anonymous", admin: true };

const keysFile = z.record(
  z.string().min(16, "API keys are at least 16 characters"),
  z.union([z.string().min(1), z.strictObject({ name: z.string().min(1), admin: z.boolean().optional() })]),
);

/**
 * The service's API keys and their principals: `--api-key KEY` (the admin) and
 * `--api-keys keys.json` (`{"<key>": "alice", "<key>": {"name": "ops", "admin": true}}`).
 */
export class ApiKeys {
  private readonly keys: Array<{ key: Buffer; principal: Principal }>;

  constructor(entries: ReadonlyArray<{ key: string; principal: Principal }>) {
    this.keys = entries.map((e) => ({ key: Buffer.from(e.key), principal: e.principal }));
  }

  static load(options: { apiKey?: string | undefined; apiKeysFile?: string | undefined }): ApiKeys {
    const entries: Array<{ key: string; principal: Principal }> = [];
    if (options.apiKey) entries.push({ key: options.apiKey, principal: { name: "admin", admin: true } });
    if (options.apiKeysFile) {
      let json: unknown;
      try {
        json = JSON.parse(readFileSync(options.apiKeysFile, "utf8"));
      } catch (err) {
        throw new ValidationError("--api-keys", `${options.apiKeysFile}: ${(err as Error).message}`);
      }
      for (const [key, who] of Object.entries(
        parseOptions(keysFile, json, `--api-keys ${options.apiKeysFile}`),
      )) {
        const principal =
          typeof who === "string"
            ? { name: who, admin: false }
            : { name: who.name, admin: who.admin ?? false };
        entries.push({ key, principal });
      }
    }
    return new ApiKeys(entries);
  }

  /** Whether requests must carry a key. */
  get required(): boolean {
    return this.keys.length > 0;
  }

  /** The principal of `Authorization: Bearer <key>`; undefined when the key is missing or unknown. */
  authenticate(authorization: string | undefined): Principal | undefined {
    if (!this.required) return ANONYMOUS;
    const match = /^Bearer (.+)$/.exec(authorization ?? "");
    if (!match?.[1]) return undefined;
    const given = Buffer.from(match[1]);
    // constant time per key: how much of a key matched must not show in the answer's timing
    return this.keys.find((k) => k.key.length === given.length && timingSafeEqual(k.key, given))?.principal;
  }
}
