import { timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { z } from "zod";
import { ValidationError } from "../errors.js";

/**
 * What a key may start in the rollout service. A list given here replaces the default;
 * a list left out keeps it (see `Principal.allow`).
 */
export interface PrincipalAllow {
  /** The `container_type`s it may start (default: every type but `local` for a non-admin key; all for an admin). */
  containerTypes?: readonly string[];
  /** The predefined environments (`--environments` entry names) it may name (default: all). */
  environments?: readonly string[];
}

/** Who a request acts for: the owner of its API key. */
export interface Principal {
  name: string;
  /** May see and change everything. */
  admin: boolean;
  /** What it may start, when the operator narrowed (or widened) the default. */
  allow?: PrincipalAllow;
}

/** Without any key configured (loopback only), every request acts for this one. */
export const ANONYMOUS: Principal = { name: "anonymous", admin: true };

const names = z.array(z.string().min(1).max(200)).max(1000);

/** A key's entry: its principal's name, or `{name, admin?, allow?}`. */
const keyEntry = z.preprocess(
  (v) => (typeof v === "string" ? { name: v } : v),
  z.strictObject({
    name: z.string().min(1).max(200),
    admin: z.boolean().optional(),
    allow: z.strictObject({ container_types: names.optional(), environments: names.optional() }).optional(),
  }),
);

/** The shortest API key accepted: shorter ones can be guessed. */
const MIN_KEY_LENGTH = 16;

/**
 * The service's API keys and their principals: `--api-key KEY` (the admin) and
 * `--api-keys keys.json` (`{"<key>": "alice", "<key>": {"name": "ops", "admin": true},
 * "<key>": {"name": "bob", "allow": {"container_types": ["docker"], "environments": ["swe"]}}}`).
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
      entries.push(...parseKeysFile(json, options.apiKeysFile));
    }
    return new ApiKeys(entries);
  }

  /** Whether requests must carry a key. */
  get required(): boolean {
    return this.keys.length > 0;
  }

  /** Every principal a key names (each once per key). */
  get principals(): Principal[] {
    return this.keys.map((k) => k.principal);
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

/**
 * The entries of a keys file. Errors name the principal (or the entry's position), never
 * the key: a key must not end up in a terminal or a log.
 */
function parseKeysFile(json: unknown, file: string): Array<{ key: string; principal: Principal }> {
  if (json === null || typeof json !== "object" || Array.isArray(json))
    throw new ValidationError("--api-keys", `${file}: expected {"<key>": "<name>" or {"name": ...}, ...}`);
  return Object.entries(json).map(([key, who], i) => {
    const label =
      typeof who === "string"
        ? who
        : typeof (who as { name?: unknown } | null)?.name === "string"
          ? (who as { name: string }).name
          : `entry ${i + 1}`;
    if (key.length < MIN_KEY_LENGTH)
      throw new ValidationError(
        "--api-keys",
        `${file}: the key of ${label} is shorter than ${MIN_KEY_LENGTH} characters`,
      );
    const parsed = keyEntry.safeParse(who);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = [label, ...(issue?.path.map(String) ?? [])].join(".");
      const what =
        issue?.code === "unrecognized_keys" ? `unknown field ${issue.keys.join(", ")}` : issue?.message;
      throw new ValidationError("--api-keys", `${file}: ${where}: ${what ?? "invalid"}`);
    }
    return { key, principal: principalOf(parsed.data) };
  });
}

function principalOf(who: {
  name: string;
  admin?: boolean | undefined;
  allow?: { container_types?: string[] | undefined; environments?: string[] | undefined } | undefined;
}): Principal {
  const allow: PrincipalAllow = {
    ...(who.allow?.container_types ? { containerTypes: who.allow.container_types } : {}),
    ...(who.allow?.environments ? { environments: who.allow.environments } : {}),
  };
  return { name: who.name, admin: who.admin ?? false, ...(who.allow ? { allow } : {}) };
}
