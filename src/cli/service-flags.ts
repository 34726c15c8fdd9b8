import type { NetworkPolicy } from "../runtime/network-policy.js";
import { parseNetworkPolicy } from "../runtime/network-policy.js";
import { REQUEST_LIMITS } from "../rollout/request-schemas.js";
import { UsageError } from "./exit-codes.js";

const RESOURCE_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** A JSON object of resource amounts, each a finite number checked by `valid`. */
function parseAmounts(
  flag: string,
  text: string,
  valid: (key: string, amount: number) => string | undefined,
): Record<string, number> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${flag} must be a JSON object: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UsageError(`${flag} must be a JSON object like '{"instances":10,"cpus":8}'`);
  }
  const amounts: Record<string, number> = {};
  for (const [key, amount] of Object.entries(value)) {
    if (!RESOURCE_KEY.test(key) || key === "__proto__")
      throw new UsageError(`${flag}: ${JSON.stringify(key)} is not a resource key (an identifier)`);
    if (typeof amount !== "number" || !Number.isFinite(amount))
      throw new UsageError(`${flag}: ${key} must be a number`);
    const problem = valid(key, amount);
    if (problem) throw new UsageError(`${flag}: ${key} ${problem}`);
    amounts[key] = amount;
  }
  return amounts;
}

/** `--max-resources`: the tracked limits; `instances` counts instances, so it is a whole number. */
export function parseLimits(text: string | undefined): Record<string, number> {
  if (text === undefined) return {};
  return parseAmounts("--max-resources", text, (key, max) => {
    if (max < 0) return "must be a number >= 0";
    if (key === "instances" && !Number.isInteger(max)) return "must be a whole number";
    return undefined;
  });
}

/**
 * `--default-resources`: what an instance is charged of each key its request leaves out
 * (and runs with, for `cpus` and `memory_gb`). More than 0: a tracked key charged
 * nothing would not be held by its limit.
 */
export function parseDefaultResources(text: string | undefined): Record<string, number> | undefined {
  if (text === undefined) return undefined;
  return parseAmounts("--default-resources", text, (key, amount) => {
    if (key === "instances") return "is counted, not charged: leave it out";
    if (!(amount > 0) || amount > REQUEST_LIMITS.maxResourceAmount)
      return `must be more than 0 and at most ${REQUEST_LIMITS.maxResourceAmount}`;
    if (key === "cpus" && amount < REQUEST_LIMITS.minCpus) return `is at least ${REQUEST_LIMITS.minCpus}`;
    if (key === "memory_gb" && amount < REQUEST_LIMITS.minMemoryGb)
      return `is at least ${REQUEST_LIMITS.minMemoryGb}`;
    return undefined;
  });
}

/** `--default-network`: `none`, `full`, or a JSON allowlist `{"allow": ["host[:port]", ...]}`. */
export function parseNetworkFlag(text: string | undefined): NetworkPolicy | undefined {
  if (text === undefined) return undefined;
  let value: unknown = text;
  if (text.trim().startsWith("{")) {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`--default-network: not JSON: ${(err as Error).message}`);
    }
  }
  try {
    return parseNetworkPolicy(value, "--default-network");
  } catch (err) {
    throw new UsageError(
      `--default-network must be none, full or '{"allow": ["host[:port]", ...]}': ${(err as Error).message}`,
    );
  }
}
