import { AffinetesError, ValidationError } from "../errors.js";
import { recoverId, sign } from "./crypto.js";

/** An RPC request as it travels: the inner JSON in base64, signed by its sender. */
export interface RequestEnvelope {
  payloadtype: string;
  payload: string;
  signature: string;
}

/** A decoded, verified request: who sent it, and its message. */
export interface SignedRequest {
  msgtype: string;
  /** The sender's id, recovered from the signature (undefined for the unsigned `versionmsg`). */
  callerId: string | undefined;
  message: Record<string, unknown>;
}

/** Messages the server answers without a signature. */
const UNSIGNED = new Set(["versionmsg", "getserverinfomsg"]);
/** Standard base64 with padding, as every ColonyOS client sends it (Go's StdEncoding refuses the rest). */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const MAX_PAYLOADTYPE_CHARS = 64;

/** Builds a signed request envelope (client side). */
export function requestEnvelope(
  message: Record<string, unknown> & { msgtype: string },
  privateKey: string,
): RequestEnvelope {
  const payload = Buffer.from(JSON.stringify(message), "utf8").toString("base64");
  return { payloadtype: message.msgtype, payload, signature: sign(payload, privateKey) };
}

/**
 * Opens a request envelope: the sender's id recovered from the signature first (403 when
 * it does not verify, as ColonyOS answers), so an unsigned body costs no more than its
 * envelope; then the payload's JSON, whose msgtype must match the envelope's (400).
 */
export function openEnvelope(body: unknown): SignedRequest {
  if (body === null || typeof body !== "object" || Array.isArray(body))
    throw new RpcError(400, "the request is not a JSON envelope");
  const { payloadtype, payload, signature } = body as Partial<Record<keyof RequestEnvelope, unknown>>;
  if (typeof payloadtype !== "string" || typeof payload !== "string")
    throw new RpcError(400, "the envelope needs payloadtype and payload (strings)");
  if (payloadtype.length > MAX_PAYLOADTYPE_CHARS) throw new RpcError(400, "payloadtype is too long");
  let callerId: string | undefined;
  if (!UNSIGNED.has(payloadtype)) {
    if (typeof signature !== "string") throw new RpcError(403, "the request is not signed");
    try {
      callerId = recoverId(payload, signature);
    } catch (err) {
      throw new RpcError(403, err instanceof ValidationError ? err.message : "invalid signature");
    }
  }
  if (!BASE64.test(payload) || payload.length % 4 !== 0)
    throw new RpcError(400, "the payload is not standard base64");
  let message: unknown;
  try {
    message = JSON.parse(Buffer.from(payload, "base64").toString("utf8"));
  } catch {
    throw new RpcError(400, "the payload is not base64 of a JSON message");
  }
  if (message === null || typeof message !== "object" || Array.isArray(message))
    throw new RpcError(400, "the payload is not a JSON object");
  const inner = message as Record<string, unknown>;
  if (inner.msgtype !== payloadtype)
    throw new RpcError(400, `msg.MsgType does not match payloadType ${payloadtype}`);
  return { msgtype: payloadtype, callerId, message: inner };
}

/** A reply envelope: the result's JSON in base64. */
export function replyEnvelope(payloadtype: string, result: unknown) {
  return {
    payloadtype,
    payload: Buffer.from(JSON.stringify(result ?? {}), "utf8").toString("base64"),
    error: false,
  };
}

/** An error reply envelope, sent with the same HTTP status. */
export function errorEnvelope(status: number, message: string) {
  return {
    payloadtype: "error",
    payload: Buffer.from(JSON.stringify({ status, message }), "utf8").toString("base64"),
    error: true,
  };
}

const CODES: Record<number, string> = {
  400: "BAD_REQUEST",
  401: "UNAUTHENTICATED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  413: "PAYLOAD_TOO_LARGE",
  429: "TOO_MANY_REQUESTS",
};

/** A failure answered with its HTTP status and message, as the ColonyOS server does. */
export class RpcError extends AffinetesError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(CODES[status] ?? "INTERNAL", message);
  }
}
