import { readFileSync } from "node:fs";
import { parseEnv } from "node:util";
import { UsageError } from "./exit-codes.js";

/** Collects a repeatable option's values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `--arg k=v`: the value is JSON when it parses as JSON (numbers, booleans, lists, objects), else a string. */
export function parseArgs(pairs: readonly string[]): Record<string, unknown> {
  const kwargs: Record<string, unknown> = {};
  for (const pair of pairs) {
    const [key, value] = splitPair(
      pair,
      "--arg key=value (e.g. --arg a=1 --arg name=alice --arg tags='[1,2]')",
    );
    kwargs[key] = parseJsonOrString(value);
  }
  return kwargs;
}

/** `--json '{...}'`: must be a JSON object. */
export function parseJsonObject(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--json must be a JSON object: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UsageError("--json must be a JSON object, like '{\"a\": 1}'");
  }
  return value as Record<string, unknown>;
}

/** `--env K=V` and `--build-arg K=V`: string values. */
export function parseKeyValues(pairs: readonly string[], flag: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const pair of pairs) {
    const [key, value] = splitPair(pair, `${flag} KEY=VALUE`);
    result[key] = value;
  }
  return result;
}

/** Variables of a `.env` file in `dir`, when there is one (KEY=VALUE lines, # comments, quotes). */
export function readDotEnv(dir: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(`${dir}/.env`, "utf8");
  } catch {
    return {};
  }
  return parseEnv(text) as Record<string, string>;
}

/** The longest delay a Node timer holds (about 24.8 days): a longer one fires at once. */
export const MAX_TIMER_S = Math.floor((2 ** 31 - 1) / 1000);

/** A positive number of seconds (at most `maxS`, by default what a timer holds), as milliseconds. */
export function parseSeconds(flag: string, text: string, maxS: number = MAX_TIMER_S): number {
  const seconds = text.trim() === "" ? NaN : Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0)
    throw new UsageError(`${flag} must be a positive number of seconds, got ${text}`);
  if (seconds > maxS) throw new UsageError(`${flag} is at most ${maxS} seconds, got ${text}`);
  const ms = Math.round(seconds * 1000);
  if (ms < 1) throw new UsageError(`${flag} must be at least 0.001 seconds, got ${text}`);
  return ms;
}

/** A positive integer (at most `max`). */
export function parsePositiveInt(flag: string, text: string, max: number = Number.MAX_SAFE_INTEGER): number {
  const value = text.trim() === "" ? NaN : Number(text);
  if (!Number.isInteger(value) || value < 1)
    throw new UsageError(`${flag} must be a positive integer, got ${text}`);
  if (value > max) throw new UsageError(`${flag} is at most ${max}, got ${text}`);
  return value;
}

function splitPair(pair: string, expected: string): [string, string] {
  const at = pair.indexOf("=");
  if (at <= 0) throw new UsageError(`expected ${expected}, got ${JSON.stringify(pair)}`);
  return [pair.slice(0, at), pair.slice(at + 1)];
}

export function parseJsonOrString(value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}
