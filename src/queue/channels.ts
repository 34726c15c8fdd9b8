import { EventEmitter } from "node:events";
import { RpcError } from "./envelope.js";
import type { ChannelEntry, Process } from "./model.js";
import { timeString } from "./model.js";
import type { QueueStore } from "./queue-store.js";
import { timerDelay } from "../util/deadline.js";

/**
 * The bound on one message: what fits a `POST /api` body (4 MiB) once the payload is
 * base64 in a base64 envelope. ColonyOS allows 10 MB (docs/colonyos-protocol.md §10).
 */
export const MAX_CHANNEL_PAYLOAD_BYTES = 2 * 1024 * 1024;
/** How often a subscription looks at the store, for entries appended through another replica. */
const POLL_MS = 250;

/**
 * Channels: append-only message logs between a process's initiator and its assigned
 * executor (`channelappendmsg`, `channelreadmsg`, `subscribechannelmsg`). Entries live in
 * the store, so any service replica serves them; appends through this replica wake its
 * subscribers at once, others' within a poll.
 */
export class ChannelHub {
  private readonly appended = new EventEmitter();

  constructor(private readonly store: QueueStore) {
    this.appended.setMaxListeners(0);
  }

  /** The channel `name` of a process, checked: declared in its spec, and the caller one of its two ends. */
  static check(process: Process, name: string, caller: string, what: "read" | "write"): void {
    if (!name) throw new RpcError(400, "name is missing");
    if (!process.spec.channels?.includes(name)) throw new RpcError(404, "Channel not found");
    if (caller !== process.initiatorid && caller !== process.assignedexecutorid)
      throw new RpcError(
        403,
        `Not authorized to ${what} ${what === "read" ? "from" : "to"} channel: only the process's initiator and assigned executor are`,
      );
  }

  async append(
    process: Process,
    name: string,
    caller: string,
    m: { sequence: number; inreplyto: number; payload?: string | number[] | undefined },
  ): Promise<void> {
    const entry: ChannelEntry = {
      sequence: m.sequence,
      ...(m.inreplyto !== 0 ? { inreplyto: m.inreplyto } : {}),
      timestamp: timeString(Date.now()),
      senderid: caller,
      payload: payloadOf(m.payload),
    };
    await this.store.appendChannel(process.processid, process.spec.conditions.colonyname, name, entry);
    this.appended.emit(`${process.processid}/${name}`);
  }

  read(process: Process, name: string, after: number, limit: number): Promise<ChannelEntry[]> {
    if (!Number.isSafeInteger(after) || !Number.isSafeInteger(limit) || limit < 0)
      throw new RpcError(400, "afterseq and limit must be integers, limit ≥ 0");
    return this.store.readChannel(process.processid, name, after, limit);
  }

  /**
   * Pushes the entries from position `after` on as they arrive, a batch per push, until
   * `timeoutS`; then one empty batch (as ColonyOS ends a channel subscription). Returns
   * how to stop early.
   */
  subscribe(
    process: Process,
    name: string,
    after: number,
    timeoutS: number,
    push: (entries: ChannelEntry[]) => void,
    ended: () => void,
  ): () => void {
    const key = `${process.processid}/${name}`;
    let position = after;
    let stopped = false;
    let reading = false;
    let again = false;
    const pump = async (): Promise<void> => {
      if (reading) {
        again = true; // an append arrived mid-read: read once more after
        return;
      }
      reading = true;
      try {
        do {
          again = false;
          const entries = await this.store.readChannel(process.processid, name, position, 0);
          if (stopped) return;
          if (entries.length) {
            position += entries.length;
            push(entries);
          }
        } while (again && !stopped);
      } catch {
        // the store is briefly unavailable: the next poll tries again
      } finally {
        reading = false;
      }
    };
    const onAppend = () => void pump();
    this.appended.on(key, onAppend);
    const poll = setInterval(onAppend, POLL_MS);
    poll.unref();
    const stop = () => {
      stopped = true;
      clearInterval(poll);
      clearTimeout(timer);
      this.appended.off(key, onAppend);
    };
    const lifetimeMs = timerDelay(timeoutS * 1000);
    const timer = setTimeout(() => {
      stop();
      push([]);
      ended();
    }, lifetimeMs);
    timer.unref();
    void pump();
    return stop;
  }
}

/**
 * A message payload as base64: Go's `[]byte` arrives as a base64 string, or (from the
 * TypeScript client) as an array of byte numbers.
 */
function payloadOf(value: string | number[] | undefined): string {
  if (value === undefined) return "";
  let bytes: Buffer;
  if (typeof value === "string") {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new RpcError(400, "payload must be base64");
    bytes = Buffer.from(value, "base64");
  } else if (Array.isArray(value) && value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
    bytes = Buffer.from(value as number[]);
  } else {
    throw new RpcError(400, "payload must be base64 or a list of bytes");
  }
  if (bytes.length > MAX_CHANNEL_PAYLOAD_BYTES) throw new RpcError(400, "payload is over 2 MiB");
  return bytes.toString("base64");
}
