import { Command, Option } from "commander";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request } from "undici";
import { AffinetesError, HostConnectionError } from "../../errors.js";
import { UsageError } from "../exit-codes.js";
import type { OutputFactory } from "../output.js";
import { parseSeconds } from "../parse-values.js";
import type { ServiceStats } from "../poll-view.js";
import { renderStats, statsSchema, truncate } from "../poll-view.js";
import { timerDelay } from "../../util/deadline.js";

interface PollFlags {
  url: string;
  list?: boolean;
  interval: string;
  raw?: boolean;
  apiKey?: string;
  once?: boolean;
  json?: boolean;
}

/** Where and how to ask: one keep-alive agent for all polls, destroyed when polling ends. */
interface Target {
  url: string;
  statsUrl: URL;
  apiKey: string | undefined;
  agent: Agent;
}

interface Poll {
  stats: ServiceStats;
  /** The document as the service sent it, for --raw and --json. */
  document: unknown;
}

// Hide the cursor while frames redraw; home + erase-to-end-of-line/screen instead of a
// full clear, so the old frame is overwritten in place and the view does not flicker.
const HIDE_CURSOR = "\x1b[?25l";
const SHOW_CURSOR = "\x1b[?25h";
const CLEAR_SCREEN = "\x1b[H\x1b[2J";
const HOME = "\x1b[H";
const ERASE_LINE_END = "\x1b[K";
const ERASE_SCREEN_END = "\x1b[J";

/**
 * `afs poll`: a live view of a rollout service's `GET /stats`, redrawn in place on a
 * terminal, as plain frames in a pipe, or as JSON lines with --raw.
 */
export function pollCommand(output: OutputFactory): Command {
  return new Command("poll")
    .description("watch a rollout service (afs serve): resources and, with --list, its instances")
    .requiredOption("--url <url>", "the service, e.g. http://127.0.0.1:8008")
    .option("--list", "also list the instances")
    .option("--interval <seconds>", "seconds between polls", "1")
    .option("--raw", "print each poll's JSON document, one per line")
    .option("--once", "poll once, print and exit")
    .addOption(new Option("--api-key <key>", "send Authorization: Bearer <key>").env("AFFINETES_API_KEY"))
    .addHelpText("after", "\nWith --json: poll once and print the stats document.")
    .action(async (flags: PollFlags) => {
      const out = output(flags);
      const intervalMs = parseSeconds("--interval", flags.interval);
      const statsUrl = parseServiceUrl(flags.url);
      const target: Target = {
        url: flags.url,
        statsUrl,
        apiKey: flags.apiKey,
        // Bounds a poll of a service that accepts connections but hangs.
        agent: new Agent({
          connectTimeout: 5_000,
          headersTimeout: Math.max(5_000, intervalMs),
          bodyTimeout: Math.max(5_000, intervalMs),
        }),
      };
      try {
        // --json is one document, as for every other command: a single poll.
        if (flags.once || out.json) {
          const poll = await fetchStats(target);
          out.result(flags.raw ? JSON.stringify(poll.document) : render(poll, flags), poll.document);
        } else {
          await pollForever(target, flags, intervalMs);
        }
      } finally {
        await target.agent.destroy();
      }
    });
}

/** The `/stats` URL of the service at `text`, which must be http(s); a path prefix is kept. */
function parseServiceUrl(text: string): URL {
  const usage = new UsageError(
    `--url must be an http:// or https:// URL like http://127.0.0.1:8008, got ${text}`,
  );
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw usage;
  return new URL(`${url.pathname.replace(/\/+$/, "")}/stats`, url);
}

/** Polls until SIGINT/SIGTERM; only a refused API key stops it, since the service will not change its mind. */
async function pollForever(target: Target, flags: PollFlags, intervalMs: number): Promise<void> {
  const tty = process.stdout.isTTY === true;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  if (tty && !flags.raw) process.stdout.write(HIDE_CURSOR + CLEAR_SCREEN);
  try {
    while (!stop.signal.aborted) {
      const next = Date.now() + intervalMs;
      const poll = await fetchStats(target, stop.signal).catch((err: unknown) => err as Error);
      if (stop.signal.aborted) break;
      if (poll instanceof AffinetesError && poll.code === "UNAUTHORIZED") throw poll;
      if (flags.raw) {
        if (poll instanceof Error) process.stderr.write(`afs: ${poll.message}\n`);
        else process.stdout.write(`${JSON.stringify(poll.document)}\n`);
      } else {
        const frame =
          poll instanceof Error
            ? `error: ${poll.message}\n(retrying every ${intervalMs / 1000}s)`
            : render(poll, flags);
        if (tty) {
          const title = `afs poll ${target.url}  every ${intervalMs / 1000}s  (Ctrl-C to quit)`;
          drawInPlace(`${title}\n\n${frame}`);
        } else {
          process.stdout.write(`${frame}\n\n`);
        }
      }
      await sleep(timerDelay(next - Date.now()), undefined, { signal: stop.signal }).catch(() => {});
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    if (tty && !flags.raw) process.stdout.write(`\n${SHOW_CURSOR}`);
  }
}

/** Overwrites the previous frame, cut to the screen's height so it never scrolls (which would break the redraw). */
function drawInPlace(frame: string): void {
  // Clipped too, since a wrapped line would take two rows and push the frame off the screen.
  const width = frameWidth();
  let lines = frame.split("\n").map((line) => (width === undefined ? line : truncate(line, width)));
  const rows = process.stdout.rows;
  if (rows && lines.length > rows - 1) {
    const hidden = lines.length - (rows - 2);
    lines = [...lines.slice(0, rows - 2), `… ${hidden} more lines`];
  }
  process.stdout.write(HOME + lines.join(`${ERASE_LINE_END}\n`) + ERASE_LINE_END + ERASE_SCREEN_END);
}

/**
 * The columns a frame may use: one less than the terminal, because a line that fills the
 * last column leaves the cursor there and erase-to-end-of-line would eat its last character.
 */
function frameWidth(): number | undefined {
  return process.stdout.isTTY && process.stdout.columns ? process.stdout.columns - 1 : undefined;
}

function render(poll: Poll, flags: PollFlags): string {
  // Idle and age are measured on the service's clock, so skew between the two hosts does not show.
  const time = Date.parse(poll.stats.server_time);
  const now = new Date(Number.isNaN(time) ? Date.now() : time);
  return renderStats(poll.stats, { list: flags.list === true, width: frameWidth(), now });
}

async function fetchStats(target: Target, signal?: AbortSignal): Promise<Poll> {
  let status: number;
  let text: string;
  try {
    const res = await request(target.statsUrl, {
      dispatcher: target.agent,
      headers: target.apiKey ? { authorization: `Bearer ${target.apiKey}` } : {},
      ...(signal ? { signal } : {}),
    });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    if (signal?.aborted) throw err;
    const { message, code } = err as Error & { code?: unknown };
    const reason = typeof code === "string" && !message.includes(code) ? `${code} ${message}` : message;
    throw new HostConnectionError(target.url, `cannot reach the service: ${reason}`, { cause: err });
  }
  if (status === 401) {
    throw new AffinetesError(
      "UNAUTHORIZED",
      target.apiKey
        ? `${target.url}: the service refused the API key: check --api-key (or AFFINETES_API_KEY)`
        : `${target.url}: the service wants an API key: --api-key KEY (or AFFINETES_API_KEY)`,
    );
  }
  if (status !== 200) {
    throw new AffinetesError(
      "SERVICE_ERROR",
      `${target.statsUrl.href}: HTTP ${status}${text ? ` ${text.slice(0, 200)}` : ""}`,
    );
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    document = undefined;
  }
  const parsed = statsSchema.safeParse(document);
  if (!parsed.success) {
    throw new AffinetesError(
      "SERVICE_ERROR",
      `${target.statsUrl.href} did not answer like an affinetes rollout service (afs serve)`,
    );
  }
  return { stats: parsed.data, document };
}
