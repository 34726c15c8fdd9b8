import { describe, expect, it } from "vitest";
import { generatePrivateKey, idOf, recoverId, sign } from "../../src/queue/crypto.js";

// Vectors from the ColonyOS sources (docs/colonyos-protocol.md §1.6 names each one's origin).
const V3 = {
  prv: "6d2fb6f546bacfd98c68769e61e0b44a697a30596c018a50e28200aa59b01c0a",
  id: "4fef2b5a82d134d058c1883c72d6d9caf77cd59ca82d73105017590dea3dcb87",
};
const V4 = {
  prv: "d6eb959e9aec2e6fdc44b5862b269e987b8a4d6f2baca542d8acaa97ee5e74f6",
  id: "5d6568f883451ae2e407d1a0a7992e414f2a67b69d0e6e9176d353b98f06f696",
};
const V5 =
  "e713a1bb015fecabb5a084b0fe6d6e7271fca6f79525a634183cfdb175fe69241f4da161779d8e6b761200e1cf93766010a19072fa778f9643363e2cfadd640900";
const V6 =
  "997eca36736d465e0e8d64e6d657ff4c939c8f5cad4272797ea0fe372bfd8d0953d21b3d06ded5dd80aee8cfa3a9be7ce615ce690eb64184fe15962943fe541300";
const V10 = {
  payload:
    "eyJjb2xvbnluYW1lIjoiZGV2IiwiY291bnQiOjEwMCwic3RhdGUiOjAsImV4ZWN1dG9ydHlwZSI6ImJlbWlzIiwibGFiZWwiOiIiLCJpbml0aWF0b3IiOiIiLCJtc2d0eXBlIjoiZ2V0cHJvY2Vzc2VzbXNnIn0=",
  signature:
    "ca0d5189e09b53667f5341a2341cb29c9d06077be7c8e1bd11c3a83b12b543425e0d06316dc7308a01ba6d1615b00e5ac13d2bd0466cfad024bb0949c920415d01",
  signerPrv: "fcc79953d8a751bf41db661592dc34d30004b1a651ffa0725b03ac227641499d",
  signerId: "039231c7644e04b6895471dd5335cf332681c54e27f81fac54f9067b3f2c0103",
};

describe("ColonyOS crypto (known vectors)", () => {
  it("derives the ids of known private keys", () => {
    expect(idOf(V3.prv)).toBe(V3.id);
    expect(idOf(V4.prv)).toBe(V4.id);
    expect(idOf(V10.signerPrv)).toBe(V10.signerId);
    expect(idOf("ddf7f7791208083b6a9ed975a72684f6406a269cfa36f1b1c32045c0a71fff05")).toBe(
      "3fc05cf3df4b494e95d6a3d297a34f19938f7daa7422ab0d4f794454133341ac",
    );
  });

  it("signs as the ColonyOS clients do (RFC 6979, low-s, r‖s‖v)", () => {
    expect(sign("hello", V4.prv)).toBe(V5);
    expect(sign(V10.payload, V10.signerPrv)).toBe(V10.signature);
  });

  it("recovers the signer's id, also from another valid signature of the same message", () => {
    expect(recoverId("hello", V5)).toBe(V4.id);
    expect(recoverId("hello", V6)).toBe(V4.id);
    expect(recoverId(V10.payload, V10.signature)).toBe(V10.signerId);
  });

  it("round-trips new keys, and refuses malformed or high-s signatures", () => {
    const key = generatePrivateKey();
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(recoverId("payload", sign("payload", key))).toBe(idOf(key));
    expect(() => recoverId("hello", "00")).toThrow(/130 hex/);
    // the same (r, n - s): valid maths, but refused as the server refuses it
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const s = BigInt(`0x${V5.slice(64, 128)}`);
    const high = `${V5.slice(0, 64)}${(n - s).toString(16).padStart(64, "0")}01`;
    expect(() => recoverId("hello", high)).toThrow(/does not verify/);
    expect(() => idOf("xyz")).toThrow(/64 hex/);
  });
});
