import Docker from "dockerode";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { BuildError, Image } from "../../src/index.js";
import { demuxDockerLogs } from "../../src/runtime/docker/demux-stream.js";
import { hasDocker, testBaseImage } from "../helpers/docker.js";

const docker = new Docker();
const runId = `${process.pid}-${Date.now()}`;
const created = new Set<string>();
const dir = mkdtempSync(join(tmpdir(), "affinetes-image-docker-"));

/** No registry here: every public base the tests name maps to the local image. */
const REWRITE = [
  `python:3.11-slim=${testBaseImage}`,
  `python:3.12-slim=${testBaseImage}`,
  `debian:bookworm-slim=${testBaseImage}`,
].join(",");

/** Builds and remembers the tag, so afterAll removes the image. */
async function build(image: Image, options: Parameters<Image["build"]>[0] = {}): Promise<string> {
  const tag = await image.build(options);
  created.add(tag);
  return tag;
}

/** Runs `script` in a container of `tag` (no network) and returns its output. */
async function runIn(tag: string, script: string): Promise<string> {
  const container = await docker.createContainer({
    Image: tag,
    Cmd: ["sh", "-c", script],
    HostConfig: { NetworkMode: "none" },
  });
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    const output = demuxDockerLogs(await container.logs({ stdout: true, stderr: true }));
    expect(StatusCode, output).toBe(0);
    return output;
  } finally {
    await container.remove({ force: true });
  }
}

describe.skipIf(!hasDocker)("Image builds on a real Docker engine", () => {
  let appFile: string;
  let pkgDir: string;
  const previousRewrite = process.env.AFFINETES_IMAGE_REWRITE;

  beforeAll(() => {
    process.env.AFFINETES_IMAGE_REWRITE = REWRITE;
    appFile = join(dir, "hello.txt");
    writeFileSync(appFile, "hello from the client\n");
    pkgDir = join(dir, "pkg");
    mkdirSync(join(pkgDir, "sub"), { recursive: true });
    writeFileSync(join(pkgDir, "mod.py"), "VALUE = 42\n");
    writeFileSync(join(pkgDir, "sub", "deep.txt"), "deep\n");
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  afterAll(async () => {
    if (previousRewrite === undefined) delete process.env.AFFINETES_IMAGE_REWRITE;
    else process.env.AFFINETES_IMAGE_REWRITE = previousRewrite;
    for (const tag of created) {
      await docker
        .getImage(tag)
        .remove({ force: true })
        .catch((err: Error) => console.warn(`could not remove ${tag}: ${err.message}`));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** The image the first tests share: every step that needs no network. */
  const appImage = () =>
    Image.python("3.11")
      .env({ RUN_ID: runId, GREETING: `hi "there" $HOME \\ 'x'` })
      .workdir("/srv/my app")
      .copy(appFile, "hello.txt")
      .copy(pkgDir, "/opt/pkg")
      .copy(appFile, "/opt/odd $name/")
      .runCommands(
        "echo built > marker.txt",
        "printf '%s\\n' one \\\n  two > lines.txt",
        "python3 -c 'print(1)'",
      );

  it("builds env, workdir, copies and commands, and a container sees them", async () => {
    const lines: string[] = [];
    const tag = await build(appImage(), { onProgress: (line) => lines.push(line), timeoutMs: 120_000 });
    expect(tag).toBe(await appImage().tag());
    expect(tag).toMatch(/^affinetes-image\/[0-9a-f]{16}:latest$/);
    expect(lines.join("\n")).toMatch(/Successfully tagged/);

    const info = await docker.getImage(tag).inspect();
    expect(info.Config.WorkingDir).toBe("/srv/my app");
    expect(info.Config.Env).toContain(`GREETING=hi "there" $HOME \\ 'x'`);

    const output = await runIn(
      tag,
      `pwd; echo "$GREETING"; cat hello.txt marker.txt lines.txt; cat /opt/pkg/mod.py /opt/pkg/sub/deep.txt; ls '/opt/odd $name'`,
    );
    expect(output.split("\n")).toEqual([
      "/srv/my app",
      `hi "there" $HOME \\ 'x'`,
      "hello from the client",
      "built",
      "one",
      "two",
      "VALUE = 42",
      "deep",
      "hello.txt",
      "",
    ]);
  });

  it("does not build again an image the engine has", async () => {
    const tag = await build(appImage());
    const before = await docker.getImage(tag).inspect();
    const buildSpy = vi.spyOn(Docker.prototype, "buildImage");
    const lines: string[] = [];
    expect(await build(appImage(), { onProgress: (line) => lines.push(line) })).toBe(tag);
    expect(buildSpy).not.toHaveBeenCalled();
    expect(lines).toEqual([]);
    const after = await docker.getImage(tag).inspect();
    expect(after.Id).toBe(before.Id);
    expect(after.Created).toBe(before.Created);
  });

  it("builds once for concurrent build() calls of the same image", async () => {
    const buildSpy = vi.spyOn(Docker.prototype, "buildImage");
    const make = () =>
      Image.python("3.11")
        .env({ RUN_ID: `${runId}-concurrent` })
        .runCommands("sleep 1");
    const seen: string[][] = [[], []];
    const tags = await Promise.all([
      build(make(), { onProgress: (line) => seen[0]?.push(line) }),
      build(make(), { onProgress: (line) => seen[1]?.push(line) }),
    ]);
    expect(tags[0]).toBe(tags[1]);
    expect(buildSpy).toHaveBeenCalledTimes(1);
    expect(seen[0]?.join("\n")).toMatch(/Successfully tagged/);
    expect(seen[1]?.join("\n")).toMatch(/Successfully tagged/);
  });

  it("builds from a Dockerfile with its folder as context, less .dockerignore", async () => {
    const folder = join(dir, "from-file");
    mkdirSync(folder);
    writeFileSync(
      join(folder, "build.Dockerfile"),
      "FROM python:3.11-slim AS base\nRUN echo stage > /stage.txt\nFROM base\nCOPY . /ctx/\n",
    );
    writeFileSync(join(folder, ".dockerignore"), "secret.txt\n");
    writeFileSync(join(folder, "app.py"), "print('app')\n");
    writeFileSync(join(folder, "secret.txt"), "do not ship\n");
    const image = Image.fromDockerfile(join(folder, "build.Dockerfile")).env({ RUN_ID: `${runId}-file` });
    const tag = await build(image);
    const output = await runIn(tag, "cat /stage.txt; ls -A /ctx; echo $RUN_ID");
    expect(output.split("\n")).toEqual([
      "stage",
      ".dockerignore",
      "Dockerfile",
      "app.py",
      "build.Dockerfile",
      `${runId}-file`,
      "",
    ]);
  });

  it("builds an inline Dockerfile, with copies and its escape directive", async () => {
    const image = Image.dockerfile("# escape=`\nFROM debian:bookworm-slim\nRUN echo inline > /inline.txt\n")
      .env({ RUN_ID: `${runId}-inline`, ODD: 'a\\b"`$c' })
      .copy(appFile, "/copied/");
    const tag = await build(image);
    expect(await runIn(tag, 'cat /inline.txt /copied/hello.txt; printf "%s\\n" "$ODD"')).toBe(
      'inline\nhello from the client\na\\b"`$c\n',
    );
  });

  it("reports a failed step as a BuildError with the output's tail", async () => {
    const image = Image.python("3.11").runCommands(`echo failing-${runId}; exit 3`);
    const error = await image.build().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(BuildError);
    expect((error as BuildError).log).toContain(`failing-${runId}`);
    const tag = await image.tag();
    await expect(docker.getImage(tag).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });
});
