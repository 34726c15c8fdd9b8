import { ValidationError } from "../errors.js";

const UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * Parses a memory size the way Docker does ("512m", "1g", "16Gi", "1.5GB", or a byte
 * count) into bytes. Units are binary, as in `docker run --memory`.
 */
export function parseMemorySize(option: string, value: string | number): number {
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value <= 0)
      throw new ValidationError(option, "must be a positive byte count");
    return value;
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b?)\s*$/i.exec(value);
  if (!match) {
    throw new ValidationError(
      option,
      `expected a size like "512m", "1g" or "16Gi", got ${JSON.stringify(value)}`,
    );
  }
  const bytes = Math.floor(Number(match[1]) * (UNITS[(match[2] ?? "").toLowerCase()] ?? 1));
  if (bytes < 6 * 1024 * 1024) throw new ValidationError(option, "must be at least 6m (Docker's minimum)");
  return bytes;
}
