import { describe, expect, it } from "vitest";
import { ValidationError } from "../../src/errors.js";
import { baseStageTag, defaultDockerfile, serverLayerDockerfile } from "../../src/image/dockerfiles.js";
import { DockerFrameReader, demuxDockerLogs } from "../../src/runtime/docker/demux-stream.js";
import { connectionFromEnv } from "../../src/runtime/docker/docker-connection.js";
import { parseMemorySize } from "../../src/util/memory-size.js";
import { tailLines } from "../../src/util/tail-lines.js";

function frame(stream: number, text: string): Buffer {
  const body = Buffer.from(text);
  const head = Buffer.alloc(8);
  head[0] = stream;
  head.writeUInt32BE(body.length, 4);
  return Buffer.concat([head, body]);
}

describe("memory sizes", () => {
  it("parses Docker-style sizes in binary units", () => {
    expect(parseMemorySize("memLimit", "512m")).toBe(512 * 1024 ** 2);
    expect(parseMemorySize("memLimit", "1g")).toBe(1024 ** 3);
    expect(parseMemorySize("memLimit", "16Gi")).toBe(16 * 1024 ** 3);
    expect(parseMemorySize("memLimit", "1.5GB")).toBe(1.5 * 1024 ** 3);
    expect(parseMemorySize("memLimit", 64 * 1024 ** 2)).toBe(64 * 1024 ** 2);
  });

  it("rejects nonsense with a ValidationError naming the option", () => {
    for (const bad of ["lots", "-1g", "12q", "1k"]) {
      expect(() => parseMemorySize("memLimit", bad)).toThrow(ValidationError);
    }
    expect(() => parseMemorySize("memLimit", 1.5)).toThrow(/memLimit/);
  });
});

describe("dockerfiles", () => {
  const folder = { path: "/x", name: "x", envFile: "/x/env.py", hasDockerfile: false, hasRequirements: true };

  it("makes a default Dockerfile from the configured base image, with requirements when present", () => {
    const text = defaultDockerfile({ ...folder, envType: "function_based" }, "local/python:3");
    expect(text).toContain("ARG BASE_IMAGE=local/python:3\nFROM ${BASE_IMAGE}");
    expect(text).toContain(
      "COPY app/requirements.txt /app/requirements.txt\nRUN pip install --no-cache-dir -r /app/requirements.txt",
    );
    expect(text).toContain("COPY app/ /app/");
    expect(text).not.toContain("CMD");
    expect(defaultDockerfile({ ...folder, envType: "http_based" }, "b")).toContain('"uvicorn", "env:app"');
  });

  it("the server layer adds the server and label for function-based envs, only the label for HTTP-based", () => {
    const fn = serverLayerDockerfile("calc:latest-base", "function_based");
    expect(fn).toMatch(/^FROM calc:latest-base\n/);
    expect(fn).toContain('LABEL affinetes.env.type="function_based"');
    expect(fn).toContain("COPY affinetes_server.py /affinetes/affinetes_server.py");
    const http = serverLayerDockerfile("web:1-base", "http_based");
    expect(http).toContain('LABEL affinetes.env.type="http_based"');
    expect(http).not.toContain("CMD");
  });

  it("names the user's stage <tag>-base", () => {
    expect(baseStageTag("calc:latest")).toBe("calc:latest-base");
    expect(baseStageTag("calc")).toBe("calc:latest-base");
    expect(baseStageTag("localhost:5000/org/calc")).toBe("localhost:5000/org/calc:latest-base");
  });
});

describe("docker output demultiplexing", () => {
  it("splits stdout and stderr frames, also when a chunk ends inside a frame", () => {
    const buffer = Buffer.concat([frame(1, "out1\n"), frame(2, "err\n"), frame(1, "out2\n")]);
    expect(demuxDockerLogs(buffer)).toBe("out1\nerr\nout2\n");
    const reader = new DockerFrameReader();
    const frames = [...reader.frames(buffer.subarray(0, 11)), ...reader.frames(buffer.subarray(11))];
    expect(frames.map((f) => [f.stream, f.data.toString()])).toEqual([
      ["stdout", "out1\n"],
      ["stderr", "err\n"],
      ["stdout", "out2\n"],
    ]);
  });

  it("passes TTY output through", () => {
    expect(demuxDockerLogs(Buffer.from("plain text\n"))).toBe("plain text\n");
  });
});

describe("DOCKER_HOST", () => {
  it("understands unix and tcp addresses", () => {
    expect(connectionFromEnv(undefined)).toEqual({ socketPath: "/var/run/docker.sock" });
    expect(connectionFromEnv("unix:///run/docker-b.sock")).toEqual({ socketPath: "/run/docker-b.sock" });
    expect(connectionFromEnv("tcp://127.0.0.1:2375")).toEqual({
      host: "127.0.0.1",
      port: 2375,
      protocol: "http",
    });
  });
});

describe("tailLines", () => {
  it("keeps the last lines", () => {
    expect(tailLines("a\nb\nc\n", 2)).toBe("b\nc\n");
    expect(tailLines("a\nb", 5)).toBe("a\nb");
    expect(tailLines("a\nb", 0)).toBe("");
    expect(tailLines("a\nb", undefined)).toBe("a\nb");
  });
});

describe("makeFolder", () => {
  it("makes missing folders, and fails (rather than hanging) where none can be made", async () => {
    const { makeFolder } = await import("../../src/util/make-folder.js");
    const { mkdtemp, stat } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const root = await mkdtemp(`${tmpdir()}/make-folder-`);
    await makeFolder(`${root}/a/b/c`);
    expect((await stat(`${root}/a/b/c`)).isDirectory()).toBe(true);
    await makeFolder(`${root}/a/b/c`); // already there
    await expect(makeFolder("/proc/affinetes-no-such/x")).rejects.toThrow();
  });
});
