import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConflictError, ResourcesExhaustedError } from "../../../src/errors.js";
import type { InstanceRecord, InstanceStore } from "../../../src/rollout/instance-store.js";

export function record(runId: string, overrides: Partial<InstanceRecord> = {}): InstanceRecord {
  return {
    runId,
    owner: "svc-a",
    principal: "alice",
    containerName: undefined,
    containerType: "docker",
    image: "img:1",
    resources: {},
    runtimeId: undefined,
    state: "starting",
    createdAt: 1_000,
    lastUsedAt: 1_000,
    numCmd: 0,
    config: { image: "img:1" },
    ...overrides,
  };
}

export interface StoreTarget {
  name: string;
  /** A fresh, empty store. */
  open: () => Promise<InstanceStore>;
  /** Opens the same store again (durable stores only). */
  reopen?: () => Promise<InstanceStore>;
}

/** The contract every InstanceStore keeps. */
export function storeConformance(target: StoreTarget): void {
  describe(`instance store conformance: ${target.name}`, () => {
    let store: InstanceStore;
    beforeEach(async () => {
      store = await target.open();
    });
    afterEach(async () => {
      await store.close();
    });

    it("records, reads, updates and counts commands", async () => {
      await store.admit(
        record("a", { containerName: "box", resources: { cpus: 2 }, config: { image: "img:1", cwd: "/w" } }),
        {},
      );
      expect(await store.get("a")).toEqual(
        record("a", { containerName: "box", resources: { cpus: 2 }, config: { image: "img:1", cwd: "/w" } }),
      );
      expect(await store.update("a", { state: "running", runtimeId: "c0ffee" })).toBe(true);
      await store.touch("a", 2_000);
      await store.touch("a", 3_000);
      expect(await store.get("a")).toMatchObject({
        state: "running",
        runtimeId: "c0ffee",
        numCmd: 2,
        lastUsedAt: 3_000,
      });
      expect(await store.update("missing", { state: "running" })).toBe(false);
      expect(await store.get("missing")).toBeUndefined();
    });

    it("refuses a duplicate run id with ConflictError", async () => {
      await store.admit(record("dup"), {});
      await expect(store.admit(record("dup"), {})).rejects.toBeInstanceOf(ConflictError);
    });

    it("enforces tracked limits and says what is short; untracked keys pass", async () => {
      const limits = { instances: 3, cpus: 4 };
      await store.admit(record("a", { resources: { cpus: 3, gpus: 8 } }), limits);
      const refused = await store
        .admit(record("b", { resources: { cpus: 2 } }), limits)
        .catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ResourcesExhaustedError);
      expect((refused as ResourcesExhaustedError).short).toEqual({ cpus: { requested: 2, available: 1 } });
      expect((refused as Error).message).toMatch(/cpus \(requested 2, available 1\)/);
      await store.admit(record("c", { resources: { cpus: 1 } }), limits);
      await store.admit(record("d"), limits);
      const full = await store.admit(record("e"), limits).catch((e: unknown) => e);
      expect((full as ResourcesExhaustedError).short).toEqual({ instances: { requested: 1, available: 0 } });
      expect(await store.allocated(["instances", "cpus", "gpus"])).toEqual({
        instances: 3,
        cpus: 4,
        gpus: 8,
      });
      expect(await store.get("b")).toBeUndefined(); // a refused admission records nothing
    });

    it("release frees what an instance held, and is idempotent", async () => {
      await store.admit(record("a"), { instances: 1 });
      expect(await store.release("a")).toBe(true);
      expect(await store.release("a")).toBe(false);
      await store.admit(record("b"), { instances: 1 });
    });

    it("lists with filters, in creation order", async () => {
      await store.admit(record("r2", { containerName: "x", createdAt: 2 }), {});
      await store.admit(record("r1", { containerName: "y", createdAt: 1 }), {});
      await store.admit(record("r3", { owner: "svc-b", createdAt: 3 }), {});
      expect((await store.list()).map((r) => r.runId)).toEqual(["r1", "r2", "r3"]);
      expect((await store.list({ owner: "svc-b" })).map((r) => r.runId)).toEqual(["r3"]);
      expect((await store.list({ owner: "svc-a", containerName: "x" })).map((r) => r.runId)).toEqual(["r2"]);
      expect((await store.list({ containerName: "x" })).map((r) => r.runId)).toEqual(["r2"]);
      expect((await store.list({ runId: "r1" })).map((r) => r.runId)).toEqual(["r1"]);
    });

    it("records whose run it is (the principal), lists by principal, and keeps run ids unique across principals", async () => {
      await store.admit(record("a1", { principal: "alice", createdAt: 1 }), {});
      await store.admit(record("b1", { principal: "bob", createdAt: 2 }), {});
      await store.admit(record("a2", { principal: "alice", owner: "svc-b", createdAt: 3 }), {});
      expect((await store.get("b1"))?.principal).toBe("bob");
      expect((await store.list({ principal: "alice" })).map((r) => r.runId)).toEqual(["a1", "a2"]);
      expect((await store.list({ principal: "alice", owner: "svc-a" })).map((r) => r.runId)).toEqual(["a1"]);
      expect(await store.list({ principal: "carol" })).toEqual([]);
      // a run id is global: bob cannot take alice's, and the refusal records nothing
      await expect(store.admit(record("a1", { principal: "bob" }), {})).rejects.toBeInstanceOf(ConflictError);
      expect((await store.get("a1"))?.principal).toBe("alice");
    });

    it("admits exactly the limit under 50 concurrent admissions", async () => {
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) => store.admit(record(`run-${i}`), { instances: 10 })),
      );
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(10);
      for (const r of results) {
        if (r.status === "rejected") expect(r.reason).toBeInstanceOf(ResourcesExhaustedError);
      }
      expect(await store.allocated(["instances"])).toEqual({ instances: 10 });
    });

    it.skipIf(!target.reopen)("keeps what it recorded across a restart", async () => {
      await store.admit(record("kept", { resources: { cpus: 1 }, principal: "bob" }), {});
      await store.close();
      store = await (target.reopen as () => Promise<InstanceStore>)();
      expect(await store.get("kept")).toMatchObject({
        runId: "kept",
        resources: { cpus: 1 },
        principal: "bob",
      });
    });
  });
}
