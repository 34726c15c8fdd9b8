import { secp256k1 } from "@noble/curves/secp256k1.js";
import { sha3_256 } from "@noble/hashes/sha3.js";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import { ValidationError } from "../errors.js";

/**
 * ColonyOS identities: secp256k1 keys; an id is the SHA3-256 of the ASCII text "04" +
 * hex(X‖Y) of the uncompressed public key, in hex. A request is signed over SHA3-256 of
 * its base64 payload string: r‖s‖v in hex (130 characters), deterministic (RFC 6979) and
 * low-s, so the server recovers the signer's id from the signature alone.
 */

/** A new private key, as the 64 hex characters ColonyOS clients use. */
export function generatePrivateKey(): string {
  return bytesToHex(secp256k1.utils.randomSecretKey());
}

/** The id of the holder of `privateKey`. */
export function idOf(privateKey: string): string {
  return idOfPublicKey(secp256k1.getPublicKey(privateKeyBytes(privateKey), false));
}

/** Signs a request's base64 payload; hex of r‖s‖v. */
export function sign(payload: string, privateKey: string): string {
  const digest = sha3_256(new TextEncoder().encode(payload));
  const recovered = secp256k1.sign(digest, privateKeyBytes(privateKey), {
    prehash: false,
    lowS: true,
    format: "recovered",
  });
  // noble puts the recovery byte first; ColonyOS puts it last
  return bytesToHex(new Uint8Array([...recovered.subarray(1), recovered[0] as number]));
}

/** The id of whoever signed `payload` with `signature`; ValidationError when it cannot be recovered. */
export function recoverId(payload: string, signature: string): string {
  if (!/^[0-9a-fA-F]{130}$/.test(signature))
    throw new ValidationError("signature", "expected 130 hex characters (r‖s‖v)");
  const bytes = hexToBytes(signature.toLowerCase());
  const v = bytes[64] as number;
  const recovery = v >= 27 ? v - 27 : v;
  if (recovery > 3) throw new ValidationError("signature", `invalid recovery id ${v}`);
  const digest = sha3_256(new TextEncoder().encode(payload));
  try {
    // as the ColonyOS server: a high-s signature is refused, though it would recover
    if (bytesToNumber(bytes.subarray(32, 64)) > HALF_ORDER)
      throw new Error("the signature's s is over half the order");
    const compact = new Uint8Array([recovery, ...bytes.subarray(0, 64)]);
    // recovery checks the signature: the key it yields is the one that verifies it
    const publicKey = secp256k1.recoverPublicKey(compact, digest, { prehash: false });
    return idOfPublicKey(secp256k1.Point.fromBytes(publicKey).toBytes(false));
  } catch (err) {
    throw new ValidationError("signature", `does not verify: ${(err as Error).message}`);
  }
}

/** Half the order of secp256k1: a low-s signature's s is at most this. */
const HALF_ORDER = secp256k1.Point.CURVE().n / 2n;

function bytesToNumber(bytes: Uint8Array): bigint {
  return BigInt(`0x${bytesToHex(bytes)}`);
}

function idOfPublicKey(uncompressed: Uint8Array): string {
  // "04" + hex(X‖Y): the hex of the uncompressed point, as ASCII text
  return bytesToHex(sha3_256(new TextEncoder().encode(bytesToHex(uncompressed))));
}

function privateKeyBytes(privateKey: string): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(privateKey))
    throw new ValidationError("privateKey", "expected 64 hex characters");
  return hexToBytes(privateKey.toLowerCase());
}
