import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { extract } from "tar-stream";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { Image, ValidationError, rewriteBaseImage } from "../../src/index.js";
import { listFolder, listPath, packContext } from "../../src/image/image-context.js";
import { Deadline } from "../../src/util/deadline.js";
import { SingleFlight } from "../../src/util/single-flight.js";

const root = mkdtempSync(join(tmpdir(), "affinetes-image-unit-"));
let counter = 0;
function tempDir(): string {
  const dir = join(root, `d${counter++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

afterAll(() => rmSync(root, { recursive: true, force: true }));
afterEach(() => {
  vi.unstubAllEnvs();
});

function lines(image: Image): string[] {
  return image.dockerfile().trimEnd().split("\n");
}

describe("Image rendering", () => {
  it("starts from the named base images", () => {
    vi.stubEnv("AFFINETES_IMAGE_REWRITE", "");
    expect(Image.debianSlim().dockerfile()).toBe("FROM debian:bookworm-slim\n");
    expect(lines(Image.debianSlim("trixie"))).toEqual(["FROM debian:trixie-slim"]);
    expect(lines(Image.ubuntu())).toEqual(["FROM ubuntu:24.04"]);
    expect(lines(Image.python())).toEqual(["FROM python:3.12-slim"]);
    expect(lines(Image.python("3.11"))).toEqual(["FROM python:3.11-slim"]);
    expect(lines(Image.node())).toEqual(["FROM node:20-slim"]);
    expect(lines(Image.from("registry.local:5000/org/base:1"))).toEqual([
      "FROM registry.local:5000/org/base:1",
    ]);
  });

  it("rejects what is not an image reference", () => {
    expect(() => Image.from("Not An Image")).toThrow(ValidationError);
    expect(() => Image.python("3.12; rm -rf /")).toThrow(ValidationError);
    expect(() => Image.from("")).toThrow(ValidationError);
  });

  it("renders package installs", () => {
    const image = Image.debianSlim()
      .aptInstall("git", "curl=7.88.1-10", "zlib1g-dev")
      .pipInstall("numpy", "requests[socks]>=2,<3", "it's")
      .npmInstall("typescript", "@scope/tool@^1.2");
    expect(lines(image).slice(1)).toEqual([
      "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends git curl=7.88.1-10 zlib1g-dev && rm -rf /var/lib/apt/lists/*",
      `RUN pip install --no-cache-dir numpy 'requests[socks]>=2,<3' 'it'\\''s'`,
      "RUN npm install -g typescript '@scope/tool@^1.2'",
    ]);
    expect(Image.python().pipInstall().dockerfile()).toBe(Image.python().dockerfile());
  });

  it("rejects package specs that are empty, multi-line, options or not apt names", () => {
    const base = Image.python();
    for (const bad of [
      () => base.pipInstall(""),
      () => base.pipInstall(" "),
      () => base.pipInstall("a\nb"),
    ]) {
      expect(bad).toThrow(ValidationError);
    }
    expect(() => base.pipInstall("--index-url=http://x")).toThrow(/option/);
    expect(() => base.npmInstall("ok", "")).toThrow(expect.objectContaining({ option: "packages.1" }));
    expect(() => base.aptInstall("git;reboot")).toThrow(ValidationError);
    expect(() => base.aptInstall("$(id)")).toThrow(ValidationError);
  });

  it("renders env and workdir so that quotes, $ and backslashes stay literal", () => {
    const image = Image.python()
      .env({ A: `x "q" $HOME \\ y'z`, B: "plain" })
      .workdir(`/my dir/$x"q`)
      .env({ C: "ends\\" });
    expect(lines(image).slice(1)).toEqual([
      `ENV A="x \\"q\\" \\$HOME \\\\ y'z" B="plain"`,
      `WORKDIR "/my dir/\\$x\\"q"`,
      `ENV C="ends\\\\"`,
    ]);
  });

  it("rejects env names and values a Dockerfile cannot hold", () => {
    const base = Image.python();
    expect(() => base.env({ "BAD-NAME": "x" })).toThrow(ValidationError);
    expect(() => base.env({ "1X": "x" })).toThrow(ValidationError);
    expect(() => base.env({ A: "two\nlines" })).toThrow(expect.objectContaining({ option: "env.A" }));
    expect(() => base.workdir("")).toThrow(ValidationError);
    expect(() => base.workdir("/a\nRUN reboot")).toThrow(ValidationError);
    expect(() => base.runCommands("")).toThrow(ValidationError);
    expect(base.env({}).dockerfile()).toBe(base.dockerfile());
  });

  it("keeps shell form for plain commands and uses exec form when the parser would change them", () => {
    const image = Image.python().runCommands(
      "echo hi && ls /",
      "echo one\necho two",
      "echo trailing \\",
      '["not", "json"]',
    );
    expect(lines(image).slice(1)).toEqual([
      "RUN echo hi && ls /",
      'RUN ["/bin/sh","-c","echo one\\necho two"]',
      'RUN ["/bin/sh","-c","echo trailing \\\\"]',
      'RUN ["/bin/sh","-c","[\\"not\\", \\"json\\"]"]',
    ]);
  });

  it("copies files and folders through the build context", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "data $1.txt"), "x");
    mkdirSync(join(dir, "folder"));
    const image = Image.python()
      .copy(join(dir, "data $1.txt"), "/opt/")
      .copy(join(dir, "folder"), "/srv/app/")
      .copy(join(dir, "data $1.txt"), `/o"dd/$n.txt`);
    expect(lines(image).slice(1)).toEqual([
      'COPY [".affinetes-copies/0", "/opt/data \\\\$1.txt"]',
      'COPY [".affinetes-copies/1", "/srv/app/"]',
      'COPY [".affinetes-copies/2", "/o\\\\\\"dd/\\\\$n.txt"]',
    ]);
    expect(() => Image.python().copy(join(dir, "missing"), "/x")).toThrow(ValidationError);
    expect(() => Image.python().copy(join(dir, "folder"), "/x\ny")).toThrow(ValidationError);
  });

  it("follows a Dockerfile's escape directive", () => {
    const image = Image.dockerfile("# escape=`\nFROM affinetes/python:3.11\n").env({ A: 'a\\b"`$' });
    expect(lines(image)).toEqual(["# escape=`", "FROM affinetes/python:3.11", 'ENV A="a\\b`"```$"']);
  });
});

describe("Image immutability", () => {
  it("returns a new image from every step and leaves the original as it was", () => {
    const base = Image.python();
    const before = base.dockerfile();
    const withEnv = base.env({ A: "1" });
    const withWorkdir = base.workdir("/w");
    expect(withEnv).not.toBe(base);
    expect(base.dockerfile()).toBe(before);
    expect(withEnv.dockerfile()).not.toContain("WORKDIR");
    expect(withWorkdir.dockerfile()).not.toContain("ENV");
    const both = withEnv.runCommands("true");
    expect(withEnv.dockerfile()).not.toContain("RUN");
    expect(both.dockerfile()).toContain("ENV A=");
  });
});

describe("Image content hash", () => {
  it("gives identical images the same tag and different ones different tags", async () => {
    vi.stubEnv("AFFINETES_IMAGE_REWRITE", "");
    const make = () => Image.python("3.11").env({ A: "1" }).runCommands("echo hi");
    const tag = await make().tag();
    expect(tag).toMatch(/^affinetes-image\/[0-9a-f]{16}:latest$/);
    expect(await make().tag()).toBe(tag);
    expect((await make().contentHash()).slice(0, 16)).toBe(tag.split("/")[1]?.slice(0, 16));
    expect(await make().env({ B: "2" }).tag()).not.toBe(tag);
    expect(await Image.python("3.11").runCommands("echo hi").env({ A: "1" }).tag()).not.toBe(tag);
  });

  it("hashes the bytes of copied files and folders, but not their timestamps", async () => {
    const dir = tempDir();
    const file = join(dir, "file.txt");
    writeFileSync(file, "one");
    mkdirSync(join(dir, "tree", "sub"), { recursive: true });
    writeFileSync(join(dir, "tree", "sub", "deep.txt"), "deep");
    const image = Image.python().copy(file, "/f.txt").copy(join(dir, "tree"), "/tree");
    const first = await image.tag();
    expect(await image.tag()).toBe(first);

    utimesSync(file, new Date(2001, 1, 1), new Date(2001, 1, 1));
    expect(await image.tag()).toBe(first);

    writeFileSync(file, "two");
    const second = await image.tag();
    expect(second).not.toBe(first);

    writeFileSync(join(dir, "tree", "sub", "deep.txt"), "deeper");
    const third = await image.tag();
    expect(third).not.toBe(second);

    writeFileSync(join(dir, "tree", "new.txt"), "");
    const fourth = await image.tag();
    expect(fourth).not.toBe(third);

    chmodSync(join(dir, "tree", "new.txt"), 0o755);
    expect(await image.tag()).not.toBe(fourth);
  });

  it("hashes a Dockerfile's folder less what .dockerignore excludes", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "Dockerfile"), "FROM python:3.11-slim\nCOPY . /app\n");
    writeFileSync(join(dir, ".dockerignore"), "ignored.txt\ncache/\n");
    writeFileSync(join(dir, "app.py"), "print(1)\n");
    writeFileSync(join(dir, "ignored.txt"), "a");
    mkdirSync(join(dir, "cache"));
    writeFileSync(join(dir, "cache", "blob"), "a");
    const image = Image.fromDockerfile(join(dir, "Dockerfile"));
    const first = await image.tag();

    writeFileSync(join(dir, "ignored.txt"), "b");
    writeFileSync(join(dir, "cache", "blob"), "b");
    expect(await image.tag()).toBe(first);

    writeFileSync(join(dir, "app.py"), "print(2)\n");
    expect(await image.tag()).not.toBe(first);
  });

  it("follows the rewritten base image", async () => {
    vi.stubEnv("AFFINETES_IMAGE_REWRITE", "");
    const plain = await Image.python("3.11").tag();
    vi.stubEnv("AFFINETES_IMAGE_REWRITE", "python:3.11-slim=affinetes/python:3.11");
    expect(Image.python("3.11").dockerfile()).toBe("FROM affinetes/python:3.11\n");
    expect(await Image.python("3.11").tag()).not.toBe(plain);
  });

  it("reports a copied path that vanished as a ValidationError", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "gone.txt"), "x");
    const image = Image.python().copy(join(dir, "gone.txt"), "/gone.txt");
    rmSync(join(dir, "gone.txt"));
    await expect(image.tag()).rejects.toBeInstanceOf(ValidationError);
  });
});

describe("Dockerfiles from files and text", () => {
  it("keeps the Dockerfile, rewrites its FROMs except stages and build args, and appends steps", () => {
    vi.stubEnv("AFFINETES_IMAGE_REWRITE", "python:3.11-slim=affinetes/python:3.11,*=affinetes/python:3.11");
    const dir = tempDir();
    const text = [
      "ARG BASE=python:3.11-slim",
      "FROM --platform=linux/amd64 python:3.11-slim AS build",
      "RUN echo \\",
      "  FROM not-an-instruction",
      "FROM build",
      "FROM ${BASE}",
      "from debian:bookworm-slim as Other",
      "FROM other",
      "FROM scratch",
    ].join("\n");
    writeFileSync(join(dir, "Custom.dockerfile"), `${text}\n\n`);
    expect(lines(Image.fromDockerfile(join(dir, "Custom.dockerfile")).workdir("/w"))).toEqual([
      "ARG BASE=python:3.11-slim",
      "FROM --platform=linux/amd64 affinetes/python:3.11 AS build",
      "RUN echo \\",
      "  FROM not-an-instruction",
      "FROM build",
      "FROM ${BASE}",
      "from affinetes/python:3.11 as Other",
      "FROM other",
      "FROM scratch",
      'WORKDIR "/w"',
    ]);
    expect(lines(Image.dockerfile("FROM node:20-slim\nRUN true"))).toEqual([
      "FROM affinetes/python:3.11",
      "RUN true",
    ]);
  });

  it("rejects missing Dockerfiles and empty text", () => {
    expect(() => Image.fromDockerfile(join(tempDir(), "Dockerfile"))).toThrow(ValidationError);
    expect(() => Image.dockerfile("")).toThrow(ValidationError);
  });
});

describe("rewriteBaseImage (AFFINETES_IMAGE_REWRITE)", () => {
  it("is the identity when unset or empty", () => {
    vi.stubEnv("AFFINETES_IMAGE_REWRITE", "");
    expect(rewriteBaseImage("python:3.12-slim")).toBe("python:3.12-slim");
  });

  it("maps exact references first, then the catch-all, never scratch", () => {
    vi.stubEnv(
      "AFFINETES_IMAGE_REWRITE",
      " python:3.11-slim = affinetes/python:3.11 , debian=local/debian:12,*=affinetes/python-fastapi:3.11,",
    );
    expect(rewriteBaseImage("python:3.11-slim")).toBe("affinetes/python:3.11");
    expect(rewriteBaseImage("docker.io/library/python:3.11-slim")).toBe("affinetes/python:3.11");
    expect(rewriteBaseImage("debian:latest")).toBe("local/debian:12");
    expect(rewriteBaseImage("debian")).toBe("local/debian:12");
    expect(rewriteBaseImage("node:20-slim")).toBe("affinetes/python-fastapi:3.11");
    expect(rewriteBaseImage("scratch")).toBe("scratch");
  });

  it("leaves unmatched references alone without a catch-all, and does not chain", () => {
    vi.stubEnv("AFFINETES_IMAGE_REWRITE", "a:1=b:1,b:1=c:1");
    expect(rewriteBaseImage("a:1")).toBe("b:1");
    expect(rewriteBaseImage("z:1")).toBe("z:1");
  });

  it("rejects a malformed setting", () => {
    for (const bad of ["python:3.11", "=x:1", "x:1=", "x:1=Bad Ref", "a:1=b:1,a:1=c:1"]) {
      vi.stubEnv("AFFINETES_IMAGE_REWRITE", bad);
      expect(() => rewriteBaseImage("x:1"), bad).toThrow(
        expect.objectContaining({ name: "ValidationError", option: "AFFINETES_IMAGE_REWRITE" }),
      );
    }
  });
});

describe("build contexts", () => {
  it("packs the Dockerfile, files, folders and symlinks with their bytes", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "tree"));
    writeFileSync(join(dir, "tree", "a.txt"), "alpha");
    symlinkSync("a.txt", join(dir, "tree", "link"));
    writeFileSync(join(dir, "single"), Buffer.from([0, 1, 2, 255]));
    const entries = [
      ...(await listPath(join(dir, "tree"), "c/0")),
      ...(await listPath(join(dir, "single"), "c/1")),
    ];
    const seen = new Map<string, { type: string; body: Buffer; linkname?: string | null }>();
    const unpack = extract();
    packContext("FROM scratch\n", entries).pipe(unpack);
    for await (const entry of unpack) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const { name, type, linkname } = entry.header;
      seen.set(name, { type: type ?? "", body: Buffer.concat(chunks), linkname });
    }
    expect([...seen.keys()]).toEqual(["Dockerfile", "c/0", "c/0/a.txt", "c/0/link", "c/1"]);
    expect(seen.get("Dockerfile")?.body.toString()).toBe("FROM scratch\n");
    expect(seen.get("c/0")?.type).toBe("directory");
    expect(seen.get("c/0/a.txt")?.body.toString()).toBe("alpha");
    expect(seen.get("c/0/link")).toMatchObject({ type: "symlink", linkname: "a.txt" });
    expect([...(seen.get("c/1")?.body ?? [])]).toEqual([0, 1, 2, 255]);
  });

  it("lists folders in name order and skips whole subtrees", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "b", "inner"), { recursive: true });
    writeFileSync(join(dir, "b", "inner", "x"), "");
    writeFileSync(join(dir, "a"), "");
    writeFileSync(join(dir, "c"), "");
    const names = (await listFolder(dir, "p", (rel) => rel === "b/inner")).map((e) => e.name);
    expect(names).toEqual(["p/a", "p/b", "p/c"]);
  });
});

describe("SingleFlight", () => {
  it("runs a key once for concurrent callers and gives all of them its progress", async () => {
    const flights = new SingleFlight<string>();
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const task = async (_signal: AbortSignal, emit: (line: string) => void) => {
      runs++;
      await gate;
      emit("built");
      return "tag";
    };
    const seenA: string[] = [];
    const seenB: string[] = [];
    const a = flights.join("k", task, { deadline: new Deadline("a"), onProgress: (l) => seenA.push(l) });
    const b = flights.join("k", task, { deadline: new Deadline("b"), onProgress: (l) => seenB.push(l) });
    release();
    expect(await Promise.all([a, b])).toEqual(["tag", "tag"]);
    expect(runs).toBe(1);
    expect(seenA).toEqual(["built"]);
    expect(seenB).toEqual(["built"]);
    await flights.join("k", task, { deadline: new Deadline("c") });
    expect(runs).toBe(2);
  });

  it("lets one caller give up without stopping the others, and stops when all gave up", async () => {
    const flights = new SingleFlight<string>();
    let taskSignal: AbortSignal | undefined;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const task = async (signal: AbortSignal) => {
      taskSignal = signal;
      await gate;
      return "done";
    };
    const quitter = new AbortController();
    const a = flights.join("k", task, { deadline: new Deadline("a", { signal: quitter.signal }) });
    const b = flights.join("k", task, { deadline: new Deadline("b") });
    quitter.abort();
    await expect(a).rejects.toMatchObject({ name: "AbortedError" });
    expect(taskSignal?.aborted).toBe(false);
    release();
    expect(await b).toBe("done");

    let stopped: AbortSignal | undefined;
    const never = (signal: AbortSignal) => {
      stopped = signal;
      return new Promise<string>((_, reject) =>
        signal.addEventListener("abort", () => reject(new Error("x"))),
      );
    };
    await expect(
      flights.join("n", never, { deadline: new Deadline("t", { timeoutMs: 20 }) }),
    ).rejects.toMatchObject({
      name: "TimeoutError",
    });
    expect(stopped?.aborted).toBe(true);
  });
});
