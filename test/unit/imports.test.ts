import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * The layering the architecture promises, read from the sources: each engine library is
 * imported only by the folder that owns it. One row per rule; a rule lists the folders
 * (prefixes of paths under the repository) allowed to break it.
 */
const RULES: ReadonlyArray<{ what: string; imports: RegExp; mentions?: RegExp; allowed: readonly string[] }> =
  [
    { what: "dockerode", imports: /^dockerode$/, allowed: ["src/runtime/docker/"] },
    { what: "docker-modem", imports: /^docker-modem(\/|$)/, allowed: ["src/runtime/docker/"] },
    {
      what: "ssh2",
      imports: /^ssh2(\/|$)/,
      allowed: ["src/host/"],
    },
    {
      what: "Slurm commands run through child_process",
      imports: /^(node:)?child_process$/,
      mentions: /["'`](sbatch|srun|scancel|squeue|scontrol|sacct)["'`\s]/,
      allowed: ["src/runtime/slurm/"],
    },
  ];

const ROOT = join(import.meta.dirname, "..", "..");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(ts|mts)$/.test(entry.name) && !entry.name.endsWith(".d.ts") ? [path] : [];
  });
}

/** The modules a file imports: `import ... from "m"`, `import "m"`, `export ... from "m"`, `import("m")`. */
function importsOf(text: string): string[] {
  const found = text.matchAll(/(?:\bfrom\s+|\bimport\s*\(?\s*)["']([^"']+)["']/g);
  return [...found].map((m) => m[1] as string);
}

const files = sources(join(ROOT, "src")).map((path) => ({
  path: relative(ROOT, path),
  text: readFileSync(path, "utf8"),
}));

describe("imports: each engine library stays in the folder that owns it", () => {
  it("finds the sources", () => {
    expect(files.length).toBeGreaterThan(100);
  });

  it.each(RULES)("$what only in $allowed", (rule) => {
    const offenders = files
      .filter((file) => !rule.allowed.some((folder) => file.path.startsWith(folder)))
      .filter((file) => importsOf(file.text).some((m) => rule.imports.test(m)))
      .filter((file) => !rule.mentions || rule.mentions.test(file.text))
      .map((file) => file.path);
    expect(offenders).toEqual([]);
  });
});
