import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pack } from "tar-stream";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Image } from "../../src/index.js";
import { hasDocker, testBaseImage } from "../helpers/docker.js";
import type { ControlService } from "../helpers/control-service.js";
import { serveControl } from "../helpers/control-service.js";

const MiB = 2 ** 20;

/** `total` bytes in 64 KiB chunks, as a stream of unknown length (sent chunked). */
function stream(total: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const size = Math.min(64 * 1024, total - sent);
      sent += size;
      this.push(Buffer.alloc(size, 7));
    },
  });
}

/** A well-formed tar holding a Dockerfile and one `total`-byte file, streamed as it is made. */
function tarStream(total: number): Readable {
  const tar = pack();
  tar.entry({ name: "Dockerfile" }, "FROM scratch\n");
  const file = tar.entry({ name: "big.bin", size: total }, () => void tar.finalize());
  void (async () => {
    for await (const chunk of stream(total)) {
      if (!file.write(chunk)) await new Promise<void>((r) => file.once("drain", () => r()));
    }
    file.end(Buffer.alloc(0));
  })().catch(() => undefined);
  return tar as unknown as Readable;
}

/**
 * The attack: octet-stream and tar uploads skipped the body limit, so a 40 MB image
 * context was written to the server's disk before anything looked at it. Uploads are
 * capped as they stream (413), hashed as they arrive, and nothing half-written is left.
 */
describe.skipIf(!hasDocker)("attack: uploads past every limit", () => {
  let control: ControlService;
  let disk: string;
  const serviceTmp = mkdtempSync(join(tmpdir(), "affinetes-upload-tmp-"));
  const contexts = () => readdirSync(serviceTmp).filter((n) => n.startsWith("affinetes-context-"));
  const leftOnDisk = () => readdirSync(join(control.disksDir, disk), { recursive: true });

  beforeAll(async () => {
    const previous = process.env.TMPDIR;
    process.env.TMPDIR = serviceTmp; // the service keeps received contexts here: we watch it
    try {
      control = await serveControl("--max-file-bytes", String(MiB), "--max-context-bytes", String(2 * MiB));
    } finally {
      if (previous === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = previous;
    }
    disk = (await control.clients.alice.disks.create({ name: "uploads" })).id;
  });

  afterAll(async () => {
    await control?.[Symbol.asyncDispose]();
  });

  const put = (path: string, body: Buffer | Readable, contentType = "application/octet-stream") =>
    request(`${control.url}${path}`, {
      method: "PUT",
      headers: { authorization: "Bearer alice-key-0123456789abcdef", "content-type": contentType },
      body,
    }).then(async (res) => ({
      status: res.statusCode,
      body: (await res.body.json()) as Record<string, unknown>,
    }));

  it("a 40 MB build context is refused with 413, announced or streamed, and nothing of it stays", async () => {
    const hash = "a".repeat(64);
    for (const body of [Buffer.alloc(40 * MiB, 1), tarStream(40 * MiB)]) {
      const res = await put(`/v1/images/${hash}`, body, "application/x-tar");
      expect(res.status).toBe(413);
      expect(res.body).toMatchObject({
        error: {
          code: "PAYLOAD_TOO_LARGE",
          message: expect.stringMatching(/build context .* 2097152 bytes/),
        },
      });
      expect(contexts()).toEqual([]);
    }
  });

  it("a file past --max-file-bytes is refused with 413, announced or streamed; no partial file is left", async () => {
    for (const body of [Buffer.alloc(5 * MiB, 1), stream(5 * MiB), stream(MiB + 1)]) {
      const res = await put(`/v1/disks/${disk}/files/content?path=big/file.bin`, body);
      expect(res.status).toBe(413);
      expect(res.body).toMatchObject({ error: { code: "PAYLOAD_TOO_LARGE" } });
      expect(leftOnDisk().filter((n) => String(n) !== "big")).toEqual([]);
    }
    const exact = await put(`/v1/disks/${disk}/files/content?path=big/file.bin`, stream(MiB));
    expect(exact).toMatchObject({ status: 200, body: { size: MiB } });
    // still serving, and the connections of the refused streams were not left mid-body for the next requests
    for (let i = 0; i < 5; i++) expect((await control.raw("alice", "GET", "/v1/whoami")).status).toBe(200);
  });

  it("a context that is not a tar, or not of its hash, is refused as it arrives; nothing stays", async () => {
    const notTar = await put(`/v1/images/${"b".repeat(64)}`, Buffer.alloc(MiB, 9), "application/x-tar");
    expect(notTar.status).toBe(400);
    expect(notTar.body).toMatchObject({ error: { code: "VALIDATION" } });
    const { context } = await Image.from(testBaseImage).env({ UPLOAD_TEST: "1" }).buildContext();
    const forged = await put(`/v1/images/${"c".repeat(64)}`, context as Readable, "application/x-tar");
    expect(forged.status).toBe(400);
    expect(forged.body).toMatchObject({
      error: { code: "VALIDATION", message: expect.stringMatching(/content hash/) },
    });
    expect(contexts()).toEqual([]);
  });
});
