import { ValidationError } from "../errors.js";
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

/** Builds a signed request envelope (client side). */
export function requestEnvelope(
  message: Record<string, unknown> & { msgtype: string },
  privateKey: string,
): RequestEnvelope {
  const payload = Buffer.from(JSON.stringify(message), "utf8").toString("base64");
  return { payloadtype: message.msgtype, payload, signature: sign(payload, privateKey) };
}

/**
 * Opens a request envelope: the payload's JSON, its msgtype matching the envelope's, and
 * the sender's id recovered from the signature (`ValidationError` with `status` 400 or
 * 403 otherwise, as ColonyOS answers).
 */
export function openEnvelope(body: unknown): SignedRequest {
  if (body === null || typeof body !== "object")
    throw new RpcError(400, "the request is not a JSON envelope");
  const { payloadtype, payload, signature } = body as Partial<RequestEnvelope>;
  if (typeof payloadtype !== "string" || typeof payload !== "string")
    throw new RpcError(400, "the envelope needs payloadtype and payload");
  let message: Record<string, unknown>;
  try {
    message = JSON.parse(Buffer.from(payload, "base64").toString("utf8")) as Record<string, unknown>;
  } catch {
    throw new RpcError(400, "the payload is not base64 of a JSON message");
  }
  if (message === null || typeof message !== "object")
    throw new RpcError(400, "the payload is not a JSON object");
  if (message.msgtype !== payloadtype)
    throw new RpcError(400, `msg.MsgType does not match payloadType ${payloadtype}`);
  if (UNSIGNED.has(payloadtype)) return { msgtype: payloadtype, callerId: undefined, message };
  if (typeof signature !== "string") throw new RpcError(403, "the request is not signed");
  try {
    return { msgtype: payloadtype, callerId: recoverId(payload, signature), message };
  } catch (err) {
    throw new RpcError(403, err instanceof ValidationError ? err.message : "invalid signature");
  }
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

/** A failure answered with its HTTP status and message, as the ColonyOS server does. */
export class RpcError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "RpcError";
  }
}
