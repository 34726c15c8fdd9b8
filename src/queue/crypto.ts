import { createHash, randomBytes } from "node:crypto";
import secp256k1 from "secp256k1";
import { ValidationError } from "../errors.js";

/**
 * ColonyOS identities: secp256k1 keys; an id is the SHA3-256 of the ASCII text "04" +
 * hex(X‖Y) of the uncompressed public key, in hex. A request is signed over SHA3-256 of
 * its base64 payload string: r‖s‖v in hex (130 characters), deterministic (RFC 6979) and
 * low-s, so the server recovers the signer's id from the signature alone.
 *
 * The curve is libsecp256k1 (the `secp256k1` package's prebuilt binding; its pure-JS
 * fallback elsewhere): recovering a signer is what every request costs the server, and
 * the native code does it ~15x faster than JavaScript.
 */

/** A new private key, as the 64 hex characters ColonyOS clients use. */
export function generatePrivateKey(): string {
  for (;;) {
    const key = randomBytes(32);
    if (secp256k1.privateKeyVerify(key)) return key.toString("hex");
  }
}

/** The id of the holder of `privateKey`. */
export function idOf(privateKey: string): string {
  return idOfPublicKey(secp256k1.publicKeyCreate(privateKeyBytes(privateKey), false));
}

/** Signs a request's base64 payload; hex of r‖s‖v. */
export function sign(payload: string, privateKey: string): string {
  // libsecp256k1 signs with the RFC 6979 nonce and always low-s
  const { signature, recid } = secp256k1.ecdsaSign(sha3(payload), privateKeyBytes(privateKey));
  return `${Buffer.from(signature).toString("hex")}${recid.toString(16).padStart(2, "0")}`;
}

/** The id of whoever signed `payload` with `signature`; ValidationError when it cannot be recovered. */
export function recoverId(payload: string, signature: string): string {
  if (!/^[0-9a-fA-F]{130}$/.test(signature))
    throw new ValidationError("signature", "expected 130 hex characters (r‖s‖v)");
  const bytes = Buffer.from(signature, "hex");
  const v = bytes[64] as number;
  const recovery = v >= 27 ? v - 27 : v;
  if (recovery > 3) throw new ValidationError("signature", `invalid recovery id ${v}`);
  // as the ColonyOS server: a high-s signature is refused, though it would recover
  if (Buffer.compare(bytes.subarray(32, 64), HALF_ORDER) > 0)
    throw new ValidationError("signature", "does not verify: the signature's s is over half the order");
  try {
    // recovery checks the signature: the key it yields is the one that verifies it
    const publicKey = secp256k1.ecdsaRecover(bytes.subarray(0, 64), recovery, sha3(payload), false);
    return idOfPublicKey(publicKey);
  } catch (err) {
    throw new ValidationError("signature", `does not verify: ${(err as Error).message}`);
  }
}

/** Half the order of secp256k1, big-endian: a low-s signature's s is at most this. */
const HALF_ORDER = Buffer.from("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0", "hex");

function sha3(text: string): Buffer {
  return createHash("sha3-256").update(text, "utf8").digest();
}

function idOfPublicKey(uncompressed: Uint8Array): string {
  // "04" + hex(X‖Y): the hex of the uncompressed point, as ASCII text
  return sha3(Buffer.from(uncompressed).toString("hex")).toString("hex");
}

function privateKeyBytes(privateKey: string): Buffer {
  if (!/^[0-9a-fA-F]{64}$/.test(privateKey))
    throw new ValidationError("privateKey", "expected 64 hex characters");
  const key = Buffer.from(privateKey, "hex");
  if (!secp256k1.privateKeyVerify(key)) throw new ValidationError("privateKey", "not a valid secp256k1 key");
  return key;
}
