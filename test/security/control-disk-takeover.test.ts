import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { App, Volume } from "../../src/index.js";
import { hasDocker, testBaseImage } from "../helpers/docker.js";
import type { ControlService } from "../helpers/control-service.js";
import { controlKeys, serveControl } from "../helpers/control-service.js";
import { repoRoot } from "../helpers/paths.js";

/** What the SDK once ran from `.affinetes/runners/<hash>/` on the app's disk, if it found one there. */
const runnerOnDisk = () => {
  const source = readFileSync(join(repoRoot, "src", "server", "function_runner.py"));
  return `.affinetes/runners/${createHash("sha256").update(source).digest("hex").slice(0, 16)}/function_runner.py`;
};

const poisonedRunner = [
  "import json, os, sys",
  "open(os.path.join(sys.argv[1], 'result.json'), 'w').write(json.dumps({'result': 'pwned'}))",
].join("\n");

/**
 * The attacks: bob makes the disk `app-ml`, grants alice write, and waits for alice's
 * `new App({ name: "ml" })` to run her functions on his disk, with a function runner he
 * can replace; principals named `constructor` or `__proto__` read grants off
 * `Object.prototype`.
 */
describe.skipIf(!hasDocker)("attack: disks taken over by name, runners replaced, prototype grants", () => {
  let control: ControlService;
  const apps: App[] = [];
  const app = (options: { name: string; disk?: string }) => {
    const made = new App({ ...options, url: control.url, apiKey: controlKeys.alice });
    apps.push(made);
    return made;
  };

  beforeAll(async () => {
    control = await serveControl();
  });

  afterAll(async () => {
    await Promise.all(apps.map((a) => a.close()));
    await control?.[Symbol.asyncDispose]();
  });

  it("alice's App never adopts bob's app-ml, even granted to her: it makes and runs on her own", async () => {
    const { alice, bob } = control.clients;
    const bobs = await bob.disks.create({ name: "app-ml" });
    await bob.disks.setUsers(bobs.id, { alice: "write" });
    await bob.disks.writeFile(bobs.id, runnerOnDisk(), poisonedRunner);

    const ml = app({ name: "ml" });
    const diskId = await ml.diskId();
    expect(diskId).not.toBe(bobs.id);
    expect(await alice.disks.get(diskId)).toMatchObject({ name: "app-ml", owner: "alice", users: {} });
    const train = ml.function<{ epochs: number }>(
      { image: testBaseImage },
      "test/fixtures/functions/train.py:main",
    );
    expect(await train.remote({ epochs: 2 })).toMatchObject({ epochs: 2 });
    expect((await alice.disks.readFile(diskId, "out/model.txt")).toString()).toBe("trained 2 epochs\n");
    // bob's disk saw nothing of it
    expect((await bob.disks.readDirectory(bobs.id, "/")).map((e) => e.name)).toEqual([".affinetes"]);

    // names resolve per owner; another's disk only by id or owner/name, and only when granted
    expect((await alice.disks.get("app-ml")).id).toBe(diskId);
    expect((await bob.disks.get("app-ml")).id).toBe(bobs.id);
    expect((await alice.disks.get("bob/app-ml")).id).toBe(bobs.id);
    await expect(bob.disks.get("alice/app-ml")).rejects.toMatchObject({ status: 403 });
    await expect(bob.disks.readDirectory(diskId)).rejects.toMatchObject({ status: 403 });
    await expect(
      bob.containers.create({ disk: "alice/app-ml", image: testBaseImage, command: "true" }),
    ).rejects.toMatchObject({ status: 403 });
    const onBobs = await bob.containers.create({ disk: "app-ml", image: testBaseImage, command: "true" });
    expect(onBobs.info.diskId).toBe(bobs.id);
    await onBobs.delete();
  });

  it("a function on a disk others may write runs the runner of the package, not one planted on the disk", async () => {
    const { bob } = control.clients;
    // alice chooses bob's shared disk explicitly; bob planted a runner where the SDK once looked for one
    const shared = app({ name: "shared", disk: "bob/app-ml" });
    const bobs = await bob.disks.get("app-ml");
    expect(await shared.diskId()).toBe(bobs.id);
    expect((await bob.disks.readFile(bobs.id, runnerOnDisk())).toString()).toBe(poisonedRunner);
    const later = shared.function<{ value: number }>(
      { image: testBaseImage },
      "test/fixtures/functions/train.py:later",
    );
    expect(await later.remote({ value: 7 })).toEqual([7, 7]);
  });

  it("principals named constructor and __proto__ are granted nothing they were not granted", async () => {
    const { alice, constructor: ctor, proto } = control.clients;
    const secret = await alice.disks.create({ name: "secret" });
    await alice.disks.writeFile(secret.id, "s.txt", "alice's");
    for (const [who, client] of [
      ["constructor", ctor],
      ["__proto__", proto],
    ] as const) {
      expect((await client.whoami()).name).toBe(who);
      await expect(client.disks.get(secret.id), who).rejects.toMatchObject({ status: 403 });
      await expect(client.disks.readFile(secret.id, "s.txt"), who).rejects.toMatchObject({ status: 403 });
      await expect(client.disks.writeFile(secret.id, "x", "y"), who).rejects.toMatchObject({ status: 403 });
      await expect(
        client.containers.create({
          image: testBaseImage,
          command: "cat /s/s.txt",
          volumes: { "/s": Volume.fromDisk(secret.id, { readOnly: true }) },
        }),
        who,
      ).rejects.toMatchObject({ status: 403 });
      expect(await client.disks.list(), who).toEqual([]);
    }
    // granted by name, a principal called constructor gets what it was granted, and no more
    await alice.disks.setUsers(secret.id, Object.fromEntries([["constructor", "read" as const]]));
    expect((await ctor.disks.readFile(secret.id, "s.txt")).toString()).toBe("alice's");
    await expect(ctor.disks.writeFile(secret.id, "x", "y")).rejects.toMatchObject({ status: 403 });
    await expect(proto.disks.readFile(secret.id, "s.txt")).rejects.toMatchObject({ status: 403 });
    // a body naming "__proto__" is refused whole (fastify's JSON parser), never half-read into a prototype
    const res = await control.raw("alice", "PUT", `/v1/disks/${secret.id}/users`, {
      body: '{"users": {"__proto__": "write", "bob": "read"}}',
      contentType: "application/json",
    });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: { code: "BAD_REQUEST", message: expect.any(String) } });
    expect((await alice.disks.get(secret.id)).users).toEqual({ constructor: "read" });
    await expect(proto.disks.writeFile(secret.id, "by-proto", "y")).rejects.toMatchObject({ status: 403 });
  });
});
