import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const resultsFile = fileURLToPath(new URL("./RESULTS.md", import.meta.url));

/**
 * Replaces one benchmark's section of bench/RESULTS.md (between `<!-- NAME:begin -->`
 * and `<!-- NAME:end -->`), creating it at the end when absent: each benchmark
 * rewrites its own results and keeps the others'.
 */
export function writeSection(name: string, content: string): void {
  const [begin, end] = [`<!-- ${name}:begin -->`, `<!-- ${name}:end -->`];
  const text = existsSync(resultsFile) ? readFileSync(resultsFile, "utf8") : "";
  const block = `${begin}\n${content.trim()}\n${end}`;
  const from = text.indexOf(begin);
  const to = text.indexOf(end, from);
  const next =
    from >= 0 && to > from
      ? text.slice(0, from) + block + text.slice(to + end.length)
      : `${text.trimEnd()}\n\n${block}\n`.trimStart();
  writeFileSync(resultsFile, next);
}
