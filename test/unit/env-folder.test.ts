import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { detectEnvType, readEnvFolder } from "../../src/runtime/env-folder.js";
import { sanitizeName } from "../../src/runtime/instance-name.js";
import { ValidationError } from "../../src/errors.js";
import { examplePath } from "../helpers/paths.js";

describe("environment folders", () => {
  it("detects a FastAPI app as http_based and anything else as function_based", () => {
    expect(detectEnvType("from fastapi import FastAPI\napp = FastAPI()\n")).toBe("http_based");
    expect(detectEnvType("import fastapi\napp = fastapi.FastAPI(title='x')\n")).toBe("http_based");
    expect(detectEnvType("def add(a, b):\n    return a + b\n")).toBe("function_based");
    // mentioning FastAPI in a comment or building something else is not enough
    expect(detectEnvType("# app = FastAPI()\nclass Actor: pass\n")).toBe("function_based");
  });

  it("reads the examples with their types", async () => {
    expect((await readEnvFolder(examplePath("calculator"))).envType).toBe("function_based");
    const fastapi = await readEnvFolder(examplePath("fastapi-env"));
    expect(fastapi).toMatchObject({ envType: "http_based", hasDockerfile: true, hasRequirements: true });
    expect((await readEnvFolder(examplePath("calculator"), "http_based")).envType).toBe("http_based");
  });

  it("rejects folders without env.py, naming the option", async () => {
    const dir = mkdtempSync(join(tmpdir(), "affinetes-noenv-"));
    writeFileSync(join(dir, "main.py"), "");
    await expect(readEnvFolder(dir)).rejects.toThrow(ValidationError);
    await expect(readEnvFolder(dir)).rejects.toThrow(/envPath.*no env\.py/);
    await expect(readEnvFolder(join(dir, "missing"))).rejects.toThrow(/not a directory/);
  });

  it("sanitizes folder names into instance names", () => {
    expect(sanitizeName("My Env!")).toBe("my-env-");
    expect(sanitizeName("__x")).toBe("x");
    expect(sanitizeName("!!!")).toBe("env");
  });
});
