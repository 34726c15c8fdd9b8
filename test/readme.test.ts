import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { hasDocker } from "./helpers/docker.js";
import { repoRoot } from "./helpers/paths.js";

const run = promisify(execFile);
const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
// Inside the package, so `import ... from "affinetes"` resolves to this package.
const dir = join(repoRoot, ".readme-check");

/** The README shows only what works: its TypeScript compiles, and the quick start runs. */
describe("README", () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("documents commands that exist", () => {
    const scripts = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { scripts: object })
      .scripts;
    for (const [, script] of readme.matchAll(/npm (?:run )?(start|test|bench)\b/g)) {
      expect(Object.keys(scripts)).toContain(script);
    }
  });

  it("has TypeScript blocks that type-check against the package", async () => {
    expect(blocks.length).toBeGreaterThan(0);
    mkdirSync(dir, { recursive: true });
    const files = blocks.map((code, i) => {
      const file = join(dir, `block-${i}.ts`);
      writeFileSync(file, `${code}\nexport {};\n`);
      return file;
    });
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({ extends: "../tsconfig.json", compilerOptions: { noEmit: true }, include: ["*.ts"] }),
    );
    const tsc = join(repoRoot, "node_modules", ".bin", "tsc");
    const result = await run(tsc, ["-p", join(dir, "tsconfig.json")]).catch((e: { stdout: string }) => e);
    expect((result as { stdout: string }).stdout, files.join(", ")).toBe("");
  });

  it.skipIf(!hasDocker)("runs the quick start as written", async () => {
    mkdirSync(dir, { recursive: true });
    const file = join(dir, "quick-start.ts");
    writeFileSync(file, `${blocks[0]}\nconsole.log("quick start ran:", await env.add({ a: 20, b: 22 }));\n`);
    const { stdout } = await run(process.execPath, ["--import", "tsx", file], {
      cwd: repoRoot,
      timeout: 120_000,
    }).catch((e: { stderr?: string; stdout?: string }) => {
      throw new Error(
        `quick start failed (${JSON.stringify(e).slice(0, 300)}):\n${(e.stderr ?? "").slice(-300)}\n${e.stdout ?? ""}`,
      );
    });
    expect(stdout).toContain("quick start ran: 42");
  });
});
