import Docker from "dockerode";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APIError, Client, Image, NotFoundError, Volume } from "../../src/index.js";
import { killAndWait } from "../helpers/client-process.js";
import { hasDocker, testBaseImage } from "../helpers/docker.js";
import type { Service } from "../helpers/service.js";
import { serve, serviceDb } from "../helpers/service.js";

const keys = {
  admin: "admin-key-0123456789abcdef",
  alice: "alice-key-0123456789abcdef",
  bob: "bob-key-0123456789abcdef00",
};

describe.skipIf(!hasDocker)("control plane: disks and containers (afs serve /v1, SDK Client)", () => {
  let service: Service;
  let admin: Client;
  let alice: Client;
  let bob: Client;
  const db = serviceDb();
  const keysFile = join(mkdtempSync(join(tmpdir(), "affinetes-keys-")), "keys.json");
  writeFileSync(keysFile, JSON.stringify({ [keys.alice]: "alice", [keys.bob]: "bob" }));
  const args = ["--db", db, "--api-key", keys.admin, "--api-keys", keysFile, "--service-id", "control-test"];

  beforeAll(async () => {
    service = await serve(...args);
    admin = new Client({ url: service.url, apiKey: keys.admin });
    alice = new Client({ url: service.url, apiKey: keys.alice });
    bob = new Client({ url: service.url, apiKey: keys.bob });
  });

  afterAll(async () => {
    for (const c of await admin.containers.list()) await c.delete();
    await Promise.all([admin.close(), alice.close(), bob.close()]);
    await killAndWait(service.child, "SIGTERM");
  });

  it("a container writes to /mnt/disk; a second container on the same disk reads it", async () => {
    const disk = await alice.disks.create({ name: "shared-work" });
    expect(disk).toMatchObject({ name: "shared-work", owner: "alice", backend: "local" });
    const writer = await alice.containers.create({
      disk: disk.id,
      image: testBaseImage,
      command: "echo from-the-first > /mnt/disk/result.txt && echo $GREETING",
      initScript: "mkdir -p /mnt/disk/logs",
      env: { GREETING: "hello" },
    });
    expect(await writer.wait()).toMatchObject({ status: "exited", exitCode: 0 });
    expect(await writer.logs()).toBe("hello\n");
    const reader = await alice.containers.create({
      disk: "shared-work",
      image: testBaseImage,
      command: "cat /mnt/disk/result.txt",
    });
    await reader.wait();
    expect(await reader.logs()).toBe("from-the-first\n");
    expect((await alice.disks.readDirectory(disk.id, "/")).map((e) => e.name)).toEqual([
      "logs",
      "result.txt",
    ]);
    expect((await alice.disks.readFile(disk.id, "result.txt")).toString()).toBe("from-the-first\n");
    await alice.disks.writeFile(disk.id, "inputs/data.csv", "a,b\n1,2\n");
    const cat = await alice.containers.create({
      disk: disk.id,
      image: testBaseImage,
      command: "cat /mnt/disk/inputs/data.csv",
    });
    await cat.wait();
    expect(await cat.logs()).toBe("a,b\n1,2\n");
  });

  it("a read-only volume rejects writes; a failing command's exit code is kept", async () => {
    const data = await alice.disks.create({ name: "datasets" });
    await alice.disks.writeFile(data.id, "train.txt", "rows\n");
    const c = await alice.containers.create({
      image: testBaseImage,
      volumes: { "/datasets": Volume.fromDisk("datasets", { readOnly: true }) },
      command: "cat /datasets/train.txt; touch /datasets/new 2>&1",
    });
    const done = await c.wait();
    expect(done.status).toBe("exited");
    expect(done.exitCode).not.toBe(0);
    expect(await c.logs()).toMatch(/rows\n.*Read-only file system/);
  });

  it("streams logs while the container runs", async () => {
    const c = await alice.containers.create({
      image: testBaseImage,
      command: "echo first; sleep 2; echo second",
    });
    const seen: string[] = [];
    for await (const chunk of c.streamLogs()) {
      seen.push(chunk);
      if (seen.join("").includes("first") && seen.length === 1) {
        // the first line arrived while the command still runs
        expect((await c.refresh()).status).toBe("running");
      }
    }
    expect(seen.join("")).toBe("first\nsecond\n");
  });

  it("needs a key (401); a key without access to a disk gets 403 until granted", async () => {
    const anonymous = await request(`${service.url}/v1/disks`);
    expect(anonymous.statusCode).toBe(401);
    expect(await anonymous.body.json()).toMatchObject({ error: { code: "UNAUTHENTICATED" } });
    const secret = await alice.disks.create({ name: "alice-private" });
    await expect(bob.disks.readDirectory(secret.id)).rejects.toMatchObject({
      status: 403,
      code: "PERMISSION_DENIED",
    });
    await expect(
      bob.containers.create({ disk: secret.id, image: testBaseImage, command: "true" }),
    ).rejects.toBeInstanceOf(APIError);
    await alice.disks.setUsers(secret.id, { bob: "read" });
    expect(await bob.disks.readDirectory(secret.id)).toEqual([]);
    await expect(bob.disks.writeFile(secret.id, "x", "no")).rejects.toMatchObject({ status: 403 });
    await expect(bob.disks.setUsers(secret.id, { bob: "write" })).rejects.toMatchObject({ status: 403 });
    expect((await bob.disks.list()).map((d) => d.name)).toEqual(["alice-private"]);
  });

  it("filters containers by metadata, publishes ports on loopback, applies CPU and memory limits", async () => {
    const web = await alice.containers.create({
      image: testBaseImage,
      command: "cd /tmp && echo served > index.html && exec python3 -m http.server 8080",
      metadata: { exp: "1", role: "web" },
      ports: [8080],
      vcpuCount: 0.5,
      memSizeMiB: 256,
    });
    await alice.containers.create({
      image: testBaseImage,
      command: "true",
      metadata: { exp: "2", role: "web" },
    });
    expect((await alice.containers.list({ metadata: { exp: "1" } })).map((c) => c.id)).toEqual([web.id]);
    expect((await alice.containers.list({ metadata: { role: "web" } })).length).toBe(2);
    expect(await bob.containers.list({ metadata: { exp: "1" } })).toEqual([]); // not bob's
    const url = web.info.ports[0]?.url;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    let body = "";
    for (let i = 0; i < 100 && body !== "served\n"; i++) {
      body = await request(`${url}/index.html`).then(
        (r) => r.body.text(),
        () => "",
      );
      if (body !== "served\n") await new Promise((r) => setTimeout(r, 100));
    }
    expect(body).toBe("served\n");
    const [docker] = await new Docker().listContainers({
      filters: { label: [`affinetes.control.container=${web.id}`] },
    });
    const inspect = await new Docker().getContainer(docker!.Id).inspect();
    expect(inspect.HostConfig.NanoCpus).toBe(5e8);
    expect(inspect.HostConfig.Memory).toBe(256 * 2 ** 20);
    expect((await web.stop()).status).toBe("stopped");
  });

  it("refuses to delete a mounted disk unless forced; bad input gets 400 naming the field", async () => {
    const disk = await alice.disks.create({ name: "busy" });
    const c = await alice.containers.create({ disk: disk.id, image: testBaseImage, command: "sleep 300" });
    await expect(alice.disks.delete(disk.id)).rejects.toMatchObject({ status: 409 });
    await alice.disks.delete(disk.id, { force: true });
    expect((await c.refresh()).status).toBe("stopped");
    await expect(alice.disks.get(disk.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(alice.disks.create({ name: "../escape" })).rejects.toMatchObject({
      status: 400,
      code: "VALIDATION",
    });
    await expect(alice.disks.create({ name: "datasets" })).rejects.toMatchObject({ status: 409 });
    await expect(alice.disks.readFile("shared-work", "../../etc/passwd")).rejects.toMatchObject({
      status: 400,
    });
    await expect(
      alice.containers.create({ image: testBaseImage, command: "true", memSizeMiB: -1 }),
    ).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/memSizeMiB/) });
  });

  it("builds an Image on the service's engine once; a context under another hash is refused", async () => {
    const image = Image.from(testBaseImage)
      .env({ BUILT_BY: "the-service" })
      .runCommands("echo built > /built.txt");
    const tag = await alice.images.ensure(image);
    expect(tag).toBe(await image.tag());
    const created = (await new Docker().getImage(tag).inspect()).Created;
    expect(await bob.images.ensure(image)).toBe(tag); // another client, same content: no second build
    expect((await new Docker().getImage(tag).inspect()).Created).toBe(created);
    const c = await alice.containers.create({ image, command: "cat /built.txt; echo $BUILT_BY" });
    await c.wait();
    expect(await c.logs()).toBe("built\nthe-service\n");
    const other = await Image.from(testBaseImage).env({ X: "1" }).buildContext();
    const forged = await request(`${service.url}/v1/images/${"0".repeat(64)}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${keys.alice}`, "content-type": "application/x-tar" },
      body: other.context,
    });
    expect(forged.statusCode).toBe(400);
    expect(await forged.body.json()).toMatchObject({
      error: { code: "VALIDATION", message: expect.stringMatching(/content hash/) },
    });
    await new Docker()
      .getImage(tag)
      .remove({ force: true })
      .catch(() => undefined);
  });

  it("a restarted service keeps its disks and containers", async () => {
    const before = {
      disks: (await admin.disks.list()).map((d) => d.id),
      containers: (await admin.containers.list()).map((c) => [c.id, c.info.status, c.info.exitCode]),
    };
    await killAndWait(service.child, "SIGKILL");
    service = await serve(...args);
    const again = new Client({ url: service.url, apiKey: keys.admin });
    try {
      expect((await again.disks.list()).map((d) => d.id)).toEqual(before.disks);
      expect((await again.containers.list()).map((c) => [c.id, c.info.status, c.info.exitCode])).toEqual(
        before.containers,
      );
      // a bare name is the caller's own disk: the admin names alice's by owner/name
      expect((await again.disks.readFile("alice/shared-work", "result.txt")).toString()).toBe(
        "from-the-first\n",
      );
    } finally {
      await again.close();
    }
    // the other clients talk to the new process from here on
    for (const client of [admin, alice, bob]) await client.close();
    admin = new Client({ url: service.url, apiKey: keys.admin });
    alice = new Client({ url: service.url, apiKey: keys.alice });
    bob = new Client({ url: service.url, apiKey: keys.bob });
  });
});
