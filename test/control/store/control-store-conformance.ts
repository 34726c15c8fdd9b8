import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConflictError } from "../../../src/errors.js";
import type { ContainerRecord, ControlStore, DiskRecord } from "../../../src/control/control-store.js";
import { diskAccess } from "../../../src/control/control-store.js";

export function disk(id: string, overrides: Partial<DiskRecord> = {}): DiskRecord {
  return {
    id,
    name: `name-${id}`,
    backend: "local",
    location: `/srv/disks/${id}`,
    owner: "alice",
    users: {},
    createdAt: 1_000,
    ...overrides,
  };
}

export function container(id: string, overrides: Partial<ContainerRecord> = {}): ContainerRecord {
  return {
    id,
    owner: "alice",
    diskId: undefined,
    diskPath: "/workspace",
    volumes: [],
    image: "img:1",
    command: undefined,
    initScript: undefined,
    env: {},
    metadata: {},
    vcpuCount: undefined,
    memSizeMiB: undefined,
    ports: [],
    network: "full",
    status: "creating",
    exitCode: undefined,
    error: undefined,
    runtimeId: undefined,
    createdAt: 1_000,
    finishedAt: undefined,
    ...overrides,
  };
}

/** A container with every optional field set, including JSON that must survive exactly. */
function fullContainer(id: string): ContainerRecord {
  return container(id, {
    diskId: "disk_full",
    diskPath: "/data",
    volumes: [
      { path: "/ro", diskId: "disk_v1", readOnly: true },
      { path: "/rw", diskId: "disk_v2", readOnly: false },
    ],
    image: "registry.example/img@sha256:abc",
    command: "python -c 'print(\"héllo\")' && echo $HOME",
    initScript: "set -e\npip install x\n",
    env: { PATH: "/usr/bin", "WITH SPACE": "a=b", EMPTY: "" },
    metadata: { task: "t1", "key.with.dots": 'quote"d', "'": "$" },
    vcpuCount: 1.5,
    memSizeMiB: 2048,
    ports: [
      { port: 8080, url: "http://host:31000" },
      { port: 9000, url: undefined },
    ],
    network: { allow: ["10.0.0.0/24:443", "api.example.com"] },
    status: "exited",
    exitCode: 137,
    error: "killed: out of memory",
    runtimeId: "c0ffee",
    createdAt: 1_700_000_000_123,
    finishedAt: 1_700_000_100_456,
  });
}

export interface ControlStoreTarget {
  name: string;
  /** A fresh, empty store. */
  open: () => Promise<ControlStore>;
  /** Opens the same store again (durable stores only). */
  reopen?: () => Promise<ControlStore>;
}

const ids = (records: Array<{ id: string }>): string[] => records.map((r) => r.id);

/** The contract every ControlStore keeps. */
export function controlStoreConformance(target: ControlStoreTarget): void {
  describe(`control store conformance: ${target.name}`, () => {
    let store: ControlStore;
    beforeEach(async () => {
      store = await target.open();
    });
    afterEach(async () => {
      await store.close();
    });

    describe("disks", () => {
      it("records a disk and reads it by id and by name, exactly", async () => {
        const d = disk("disk_a1", { users: { bob: "read", carol: "write" }, createdAt: 1_700_000_000_001 });
        await store.createDisk(d);
        expect(await store.getDisk("disk_a1")).toStrictEqual(d);
        expect(await store.getDiskByName("alice", "name-disk_a1")).toStrictEqual(d);
        expect(await store.getDisk("disk_missing")).toBeUndefined();
        expect(await store.getDiskByName("alice", "missing")).toBeUndefined();
        expect(await store.getDiskByName("bob", "name-disk_a1")).toBeUndefined(); // not bob's
      });

      it("refuses a name its owner has taken with ConflictError (code CONFLICT) and keeps the first disk", async () => {
        await store.createDisk(disk("disk_1", { name: "shared" }));
        const refused = await store.createDisk(disk("disk_2", { name: "shared" })).catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(ConflictError);
        expect((refused as ConflictError).code).toBe("CONFLICT");
        expect((refused as Error).message).toContain("shared");
        expect(await store.getDisk("disk_2")).toBeUndefined();
        expect(await store.getDiskByName("alice", "shared")).toMatchObject({ id: "disk_1", owner: "alice" });
      });

      it("keeps names per owner: another owner's disk of the same name is its own, found only under it", async () => {
        await store.createDisk(
          disk("disk_m", { name: "app-ml", owner: "mallory", users: { alice: "write" } }),
        );
        await store.createDisk(disk("disk_a", { name: "app-ml", owner: "alice" }));
        expect((await store.getDiskByName("alice", "app-ml"))?.id).toBe("disk_a");
        expect((await store.getDiskByName("mallory", "app-ml"))?.id).toBe("disk_m");
        expect(await store.getDiskByName("bob", "app-ml")).toBeUndefined();
        expect(ids(await store.listDisks({ principal: "alice" }))).toEqual(["disk_m", "disk_a"]);
      });

      it("refuses a taken id with ConflictError", async () => {
        await store.createDisk(disk("disk_1", { name: "one" }));
        await expect(store.createDisk(disk("disk_1", { name: "two" }))).rejects.toBeInstanceOf(ConflictError);
        expect(await store.getDiskByName("alice", "two")).toBeUndefined();
      });

      it("lets exactly one of 20 concurrent creations of one name succeed", async () => {
        const results = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) => store.createDisk(disk(`disk_c${i}`, { name: "race" }))),
        );
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        for (const r of results) {
          if (r.status === "rejected") expect(r.reason).toBeInstanceOf(ConflictError);
        }
        expect(await store.listDisks()).toHaveLength(1);
      });

      it("lists all disks, or those a principal owns or was granted, in creation order", async () => {
        await store.createDisk(disk("disk_b", { owner: "bob", createdAt: 2 }));
        await store.createDisk(disk("disk_a", { owner: "alice", users: { bob: "read" }, createdAt: 1 }));
        await store.createDisk(disk("disk_c", { owner: "carol", users: { dave: "write" }, createdAt: 3 }));
        // a key that is a prefix, a JSON-path lookalike or carries quotes grants nothing
        await store.createDisk(
          disk("disk_d", { owner: "erin", users: { bobby: "read", '"bob"': "read" }, createdAt: 4 }),
        );
        expect(ids(await store.listDisks())).toEqual(["disk_a", "disk_b", "disk_c", "disk_d"]);
        expect(ids(await store.listDisks({}))).toEqual(["disk_a", "disk_b", "disk_c", "disk_d"]);
        expect(ids(await store.listDisks({ principal: "bob" }))).toEqual(["disk_a", "disk_b"]);
        expect(ids(await store.listDisks({ principal: "dave" }))).toEqual(["disk_c"]);
        expect(ids(await store.listDisks({ principal: '"bob"' }))).toEqual(["disk_d"]);
        expect(ids(await store.listDisks({ principal: "$.bob" }))).toEqual([]);
        expect(ids(await store.listDisks({ principal: "nobody" }))).toEqual([]);
      });

      it("grants by own keys only: constructor, __proto__ and toString are granted nothing unless named", async () => {
        // JSON.parse makes "__proto__" an own key, as a request body would
        const users = JSON.parse('{"__proto__": "read", "bob": "write"}') as DiskRecord["users"];
        await store.createDisk(disk("disk_p", { users }));
        await store.createDisk(disk("disk_q", { name: "plain" }));
        const read = (await store.getDisk("disk_p")) as DiskRecord;
        expect(Object.keys(read.users).sort()).toEqual(["__proto__", "bob"]);
        expect(diskAccess(read, "__proto__")).toBe("read");
        expect(diskAccess(read, "bob")).toBe("write");
        const plain = (await store.getDisk("disk_q")) as DiskRecord;
        for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"])
          expect(diskAccess(plain, name), name).toBeUndefined();
        expect(diskAccess(read, "constructor")).toBeUndefined();
        expect(ids(await store.listDisks({ principal: "constructor" }))).toEqual([]);
        expect(ids(await store.listDisks({ principal: "__proto__" }))).toEqual(["disk_p"]);
      });

      it("keeps creation order for disks created in the same millisecond", async () => {
        for (const id of ["disk_z", "disk_y", "disk_x"]) await store.createDisk(disk(id, { createdAt: 5 }));
        expect(ids(await store.listDisks())).toEqual(["disk_z", "disk_y", "disk_x"]);
      });

      it("replaces a disk's users; false for an unknown disk", async () => {
        await store.createDisk(disk("disk_u", { users: { bob: "read" } }));
        expect(await store.setDiskUsers("disk_u", { carol: "write", dave: "read" })).toBe(true);
        expect((await store.getDisk("disk_u"))?.users).toStrictEqual({ carol: "write", dave: "read" });
        expect(ids(await store.listDisks({ principal: "bob" }))).toEqual([]);
        expect(ids(await store.listDisks({ principal: "carol" }))).toEqual(["disk_u"]);
        expect(await store.setDiskUsers("disk_u", {})).toBe(true);
        expect((await store.getDisk("disk_u"))?.users).toStrictEqual({});
        expect(await store.setDiskUsers("disk_missing", { bob: "read" })).toBe(false);
        expect(await store.getDisk("disk_missing")).toBeUndefined();
      });

      it("deletes a disk once (false the second time) and frees its name", async () => {
        await store.createDisk(disk("disk_del", { name: "gone" }));
        expect(await store.deleteDisk("disk_del")).toBe(true);
        expect(await store.deleteDisk("disk_del")).toBe(false);
        expect(await store.getDisk("disk_del")).toBeUndefined();
        expect(await store.getDiskByName("alice", "gone")).toBeUndefined();
        await store.createDisk(disk("disk_new", { name: "gone" }));
        expect((await store.getDiskByName("alice", "gone"))?.id).toBe("disk_new");
      });
    });

    describe("containers", () => {
      it("round-trips every field exactly", async () => {
        const full = fullContainer("ctr_full");
        await store.createContainer(full);
        expect(await store.getContainer("ctr_full")).toStrictEqual(full);
      });

      it("reads unset optional fields back as undefined, not null", async () => {
        const bare = container("ctr_bare");
        await store.createContainer(bare);
        const read = await store.getContainer("ctr_bare");
        expect(read).toStrictEqual(bare);
        for (const key of [
          "diskId",
          "command",
          "initScript",
          "vcpuCount",
          "memSizeMiB",
          "exitCode",
          "error",
          "runtimeId",
          "finishedAt",
        ] as const) {
          expect(read).toHaveProperty(key, undefined);
        }
        expect(await store.getContainer("ctr_missing")).toBeUndefined();
      });

      it("refuses a taken container id with ConflictError", async () => {
        await store.createContainer(container("ctr_dup"));
        await expect(store.createContainer(container("ctr_dup", { image: "other" }))).rejects.toBeInstanceOf(
          ConflictError,
        );
        expect((await store.getContainer("ctr_dup"))?.image).toBe("img:1");
      });

      it("lists in creation order, with filters on owner, disk, status and metadata", async () => {
        await store.createContainer(
          container("ctr_2", {
            owner: "bob",
            diskId: "disk_x",
            metadata: { task: "t1", run: "r1" },
            createdAt: 2,
          }),
        );
        await store.createContainer(
          container("ctr_1", { status: "running", metadata: { task: "t1", run: "r2" }, createdAt: 1 }),
        );
        await store.createContainer(
          container("ctr_3", { diskId: "disk_x", status: "running", metadata: { task: "t2" }, createdAt: 3 }),
        );
        await store.createContainer(container("ctr_4", { diskId: "disk_xy", createdAt: 3 }));
        expect(ids(await store.listContainers())).toEqual(["ctr_1", "ctr_2", "ctr_3", "ctr_4"]);
        expect(ids(await store.listContainers({}))).toEqual(["ctr_1", "ctr_2", "ctr_3", "ctr_4"]);
        expect(ids(await store.listContainers({ owner: "bob" }))).toEqual(["ctr_2"]);
        expect(ids(await store.listContainers({ diskId: "disk_x" }))).toEqual(["ctr_2", "ctr_3"]);
        expect(ids(await store.listContainers({ status: "running" }))).toEqual(["ctr_1", "ctr_3"]);
        expect(ids(await store.listContainers({ owner: "alice", diskId: "disk_x" }))).toEqual(["ctr_3"]);
        expect(ids(await store.listContainers({ owner: "alice", status: "creating" }))).toEqual(["ctr_4"]);
        expect(ids(await store.listContainers({ metadata: { task: "t1" } }))).toEqual(["ctr_1", "ctr_2"]);
        expect(ids(await store.listContainers({ metadata: { task: "t1", run: "r1" } }))).toEqual(["ctr_2"]);
        // two pairs, only one of which matches: excluded
        expect(ids(await store.listContainers({ metadata: { task: "t2", run: "r1" } }))).toEqual([]);
        expect(ids(await store.listContainers({ metadata: { run: "r" } }))).toEqual([]);
        expect(ids(await store.listContainers({ metadata: {} }))).toEqual([
          "ctr_1",
          "ctr_2",
          "ctr_3",
          "ctr_4",
        ]);
        expect(ids(await store.listContainers({ metadata: { task: "t1" }, status: "running" }))).toEqual([
          "ctr_1",
        ]);
      });

      it("matches metadata keys and values exactly, whatever characters they hold", async () => {
        const odd = { "a.b": "1", 'q"k': 'v"1', $: "dollar", "[0]": "idx" };
        await store.createContainer(container("ctr_odd", { metadata: odd }));
        await store.createContainer(
          container("ctr_plain", { metadata: { a: "1", b: "1", ab: "1", qk: 'v"1' } }),
        );
        expect(ids(await store.listContainers({ metadata: odd }))).toEqual(["ctr_odd"]);
        expect(ids(await store.listContainers({ metadata: { "a.b": "1" } }))).toEqual(["ctr_odd"]);
        expect(ids(await store.listContainers({ metadata: { 'q"k': 'v"1' } }))).toEqual(["ctr_odd"]);
        expect(ids(await store.listContainers({ metadata: { qk: 'v"1' } }))).toEqual(["ctr_plain"]);
        expect(ids(await store.listContainers({ metadata: { $: "dollar" } }))).toEqual(["ctr_odd"]);
        expect(ids(await store.listContainers({ metadata: { "a.b": "2" } }))).toEqual([]);
      });

      it("keeps creation order for containers created in the same millisecond", async () => {
        for (const id of ["ctr_z", "ctr_y", "ctr_x"])
          await store.createContainer(container(id, { createdAt: 5 }));
        expect(ids(await store.listContainers())).toEqual(["ctr_z", "ctr_y", "ctr_x"]);
      });

      it("patches only the given fields; false for an unknown container", async () => {
        await store.createContainer(container("ctr_p", { metadata: { k: "v" } }));
        expect(await store.updateContainer("ctr_p", { status: "running", runtimeId: "abc123" })).toBe(true);
        expect(await store.getContainer("ctr_p")).toStrictEqual(
          container("ctr_p", { metadata: { k: "v" }, status: "running", runtimeId: "abc123" }),
        );
        const ports = [
          { port: 80, url: "http://h:1" },
          { port: 81, url: undefined },
        ];
        expect(await store.updateContainer("ctr_p", { ports })).toBe(true);
        expect((await store.getContainer("ctr_p"))?.ports).toStrictEqual(ports);
        expect(
          await store.updateContainer("ctr_p", {
            status: "failed",
            exitCode: 1,
            error: "boom",
            finishedAt: 9_999,
          }),
        ).toBe(true);
        expect(await store.getContainer("ctr_p")).toStrictEqual(
          container("ctr_p", {
            metadata: { k: "v" },
            status: "failed",
            runtimeId: "abc123",
            ports,
            exitCode: 1,
            error: "boom",
            finishedAt: 9_999,
          }),
        );
        // a field given as undefined is cleared; an empty patch changes nothing
        expect(await store.updateContainer("ctr_p", { error: undefined })).toBe(true);
        expect((await store.getContainer("ctr_p"))?.error).toBeUndefined();
        expect(await store.updateContainer("ctr_p", {})).toBe(true);
        expect((await store.getContainer("ctr_p"))?.status).toBe("failed");
        expect(await store.updateContainer("ctr_missing", { status: "running" })).toBe(false);
        expect(await store.updateContainer("ctr_missing", {})).toBe(false);
        expect(await store.getContainer("ctr_missing")).toBeUndefined();
      });

      it("deletes a container once (false the second time)", async () => {
        await store.createContainer(container("ctr_d"));
        await store.createContainer(container("ctr_keep"));
        expect(await store.deleteContainer("ctr_d")).toBe(true);
        expect(await store.deleteContainer("ctr_d")).toBe(false);
        expect(await store.getContainer("ctr_d")).toBeUndefined();
        expect(ids(await store.listContainers())).toEqual(["ctr_keep"]);
      });

      it("finds unfinished containers using a disk, as disk or as volume, without prefix matches", async () => {
        const vol = (diskId: string) => ({ path: `/mnt/${diskId}`, diskId, readOnly: false });
        await store.createContainer(
          container("ctr_disk", { diskId: "disk_ab", status: "running", createdAt: 1 }),
        );
        await store.createContainer(
          container("ctr_vol", {
            volumes: [vol("disk_zz"), vol("disk_ab")],
            status: "creating",
            createdAt: 2,
          }),
        );
        await store.createContainer(
          container("ctr_exited", { diskId: "disk_ab", status: "exited", createdAt: 3 }),
        );
        await store.createContainer(
          container("ctr_stopped", { volumes: [vol("disk_ab")], status: "stopped", createdAt: 4 }),
        );
        await store.createContainer(
          container("ctr_failed", { diskId: "disk_ab", status: "failed", createdAt: 5 }),
        );
        // ids that only share a prefix, or hold the id in another field, must not match
        await store.createContainer(
          container("ctr_prefix", {
            diskId: "disk_abc",
            volumes: [vol("disk_abc"), { path: "/disk_ab", diskId: "disk_a", readOnly: true }],
            metadata: { diskId: "disk_ab" },
            diskPath: "disk_ab",
            status: "running",
            createdAt: 6,
          }),
        );
        expect(ids(await store.containersUsingDisk("disk_ab"))).toEqual(["ctr_disk", "ctr_vol"]);
        expect(ids(await store.containersUsingDisk("disk_abc"))).toEqual(["ctr_prefix"]);
        expect(ids(await store.containersUsingDisk("disk_a"))).toEqual(["ctr_prefix"]);
        expect(ids(await store.containersUsingDisk("disk_zz"))).toEqual(["ctr_vol"]);
        expect(await store.containersUsingDisk("disk_")).toEqual([]);
        expect(await store.containersUsingDisk("disk_nobody")).toEqual([]);

        // finishing a container releases the disk
        await store.updateContainer("ctr_disk", { status: "exited", exitCode: 0, finishedAt: 10 });
        expect(ids(await store.containersUsingDisk("disk_ab"))).toEqual(["ctr_vol"]);
        expect((await store.containersUsingDisk("disk_zz"))[0]).toStrictEqual(
          container("ctr_vol", {
            volumes: [vol("disk_zz"), vol("disk_ab")],
            status: "creating",
            createdAt: 2,
          }),
        );
      });
    });

    it.skipIf(!target.reopen)("keeps what it recorded across a restart", async () => {
      const d = disk("disk_kept", { users: { bob: "write" } });
      const full = fullContainer("ctr_kept");
      await store.createDisk(d);
      await store.createContainer(full);
      await store.createContainer(container("ctr_bare_kept", { createdAt: 2_000_000_000_000 }));
      await store.updateContainer("ctr_bare_kept", { status: "running", runtimeId: "r1" });
      await store.close();
      store = await (target.reopen as () => Promise<ControlStore>)();
      expect(await store.getDisk("disk_kept")).toStrictEqual(d);
      expect(await store.getDiskByName("alice", "name-disk_kept")).toStrictEqual(d);
      expect(await store.getContainer("ctr_kept")).toStrictEqual(full);
      expect(await store.getContainer("ctr_bare_kept")).toStrictEqual(
        container("ctr_bare_kept", { createdAt: 2_000_000_000_000, status: "running", runtimeId: "r1" }),
      );
      expect(ids(await store.listContainers())).toEqual(["ctr_kept", "ctr_bare_kept"]);
      await expect(store.createDisk(disk("disk_other", { name: "name-disk_kept" }))).rejects.toBeInstanceOf(
        ConflictError,
      );
    });
  });
}
