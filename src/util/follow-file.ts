import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { tailLines } from "./tail-lines.js";

/**
 * Follows a growing log file: first its last `tail` lines, then what is appended, until
 * `signal` aborts or the file is removed (its instance was stopped).
 */
export async function* followFile(
  file: string,
  options: { tail?: number; signal?: AbortSignal; intervalMs?: number } = {},
): AsyncIterable<string> {
  let text = await readFile(file, "utf8").catch(() => "");
  yield tailLines(text, options.tail);
  let offset = Buffer.byteLength(text);
  while (!options.signal?.aborted) {
    await sleep(options.intervalMs ?? 200, undefined, { signal: options.signal }).catch(() => undefined);
    const buffer = await readFile(file).catch(() => undefined);
    if (!buffer) return;
    if (buffer.length > offset) {
      text = buffer.subarray(offset).toString("utf8");
      offset = buffer.length;
      yield text;
    }
  }
}
