import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { App, Client, Image, RemoteError } from "../../src/index.js";
import { killAndWait } from "../helpers/client-process.js";
import { hasDocker, testBaseImage } from "../helpers/docker.js";
import type { Service } from "../helpers/service.js";
import { serve } from "../helpers/service.js";

const apiKey = "functions-test-key-0123456789";

describe.skipIf(!hasDocker)("control plane: apps and functions", () => {
  let service: Service;
  let app: App;
  const logs: string[] = [];
  // Built once on the client's engine; the tag is the content hash.
  const python = Image.from(testBaseImage).env({ GREETING: "from-the-image" });

  beforeAll(async () => {
    service = await serve("--api-key", apiKey, "--service-id", "functions-test");
    app = new App({ name: "ml", url: service.url, apiKey, logs: (chunk) => logs.push(chunk) });
  });

  afterAll(async () => {
    await app?.close();
    await killAndWait(service.child, "SIGTERM");
  });

  it("remote() runs a Python function on the app's disk and returns its JSON result; its output streams", async () => {
    const train = app.function<{ epochs: number }>(
      { image: python },
      "test/fixtures/functions/train.py:main",
    );
    expect(await train.remote({ epochs: 3 })).toEqual({ epochs: 3, loss: 0.25, greeting: "from-the-image" });
    expect(logs.join("")).toContain("epoch 0\nepoch 1\nepoch 2\n");
    // what the function wrote to /mnt/disk, another container of the app reads
    const reader = await app.run({ image: testBaseImage, command: "cat /mnt/disk/out/model.txt" });
    await reader.wait();
    expect(await reader.logs()).toBe("trained 3 epochs\n");
    await reader.delete();
    expect(
      await app.function({ image: python }, "test/fixtures/functions/train.py:later").remote({ value: 7 }),
    ).toEqual([7, 7]);
  });

  it("a function that raises gives RemoteError with the remote type, message and traceback", async () => {
    const fail = app.function({ image: python }, "test/fixtures/functions/train.py:fail");
    const error = await fail.remote({ reason: "no data" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteError);
    expect(error).toMatchObject({ errorType: "ValueError", remoteMessage: "no data" });
    expect((error as RemoteError).remoteTraceback).toMatch(/train\.py", line \d+, in fail/);
  });

  it("spawn() returns at once; with concurrency 1 the calls never overlap", async () => {
    const span = app.function<{ tag: string }, string>(
      { image: python, concurrency: 1 },
      "test/fixtures/functions/train.py:span",
    );
    const calls = ["a", "b"].map((tag) => span.spawn({ tag }));
    expect(await Promise.all(calls.map((c) => c.result()))).toEqual(["a", "b"]);
    const client = new Client({ url: service.url, apiKey });
    try {
      const disk = await app.diskId();
      const [a, b] = await Promise.all(
        ["a", "b"].map(async (tag) =>
          (await client.disks.readFile(disk, `spans-${tag}.txt`)).toString().trim().split(" ").map(Number),
        ),
      );
      const [first, second] = a![0]! < b![0]! ? [a!, b!] : [b!, a!];
      expect(second[0]).toBeGreaterThanOrEqual(first[1]!); // the second started after the first ended
    } finally {
      await client.close();
    }
  });

  it("runs a JavaScript function with Node in the image", async () => {
    // No Node image without a registry here: this machine's node binary goes into the image.
    const node = Image.from(testBaseImage).copy(process.execPath, "/usr/local/bin/node");
    const mean = app.function<{ values: number[] }, number>(
      { image: node },
      "test/fixtures/functions/stats.mjs#mean",
    );
    expect(await mean.remote({ values: [1, 2, 3, 6] })).toBe(3);
    const fails = app.function({ image: node }, "test/fixtures/functions/stats.mjs#fails");
    await expect(fails.remote()).rejects.toMatchObject({
      errorType: "RangeError",
      remoteMessage: "out of range",
    });
  });

  it("runs a TypeScript function, bundled with its local imports, on the image's Node", async () => {
    const node = Image.from(testBaseImage).copy(process.execPath, "/usr/local/bin/node");
    const weighted = app.function<{ samples: Array<{ label: string; score: number }> }>(
      { image: node },
      "test/fixtures/functions/scoring.ts#weighted",
    );
    expect(
      await weighted.remote({
        samples: [
          { label: "hard", score: 3 },
          { label: "easy", score: 4 },
          { label: "other", score: 5 },
        ],
      }),
    ).toEqual({ hard: 6, easy: 2, other: 5 });
  });

  it("a function file that is neither here nor on the disk is reported by the remote side", async () => {
    const missing = app.function({ image: python }, "nowhere/missing.py:main");
    await expect(missing.remote()).rejects.toMatchObject({ errorType: "FileNotFoundError" });
  });

  it("refuses a malformed function reference", () => {
    expect(() => app.function({ image: python }, "train.py")).toThrow(/path\/file.py:function/);
    expect(() => app.function({ image: python }, "../x.py:f")).toThrow(/relative to the app's disk/);
  });
});
