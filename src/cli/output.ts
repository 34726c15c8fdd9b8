/** Builds the output of a command from its flags (`--json`, given before or after the command). */
export type OutputFactory = (flags?: { json?: unknown }) => Output;

/** How a command reports: human text by default, one JSON document with `--json`. */
export interface Output {
  readonly json: boolean;
  /** A result: human text, or the JSON document. */
  result(human: string, data: unknown): void;
  /** Progress for people, on stderr: a spinner on a terminal, plain lines otherwise, nothing with --json. */
  progress(text: string): { done(final?: string): void };
  /** A line of build or start output on stderr (not with --json). */
  line(text: string): void;
}

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

export function createOutput(json: boolean): Output {
  const tty = process.stderr.isTTY === true;
  return {
    json,
    result(human, data) {
      process.stdout.write(json ? `${JSON.stringify(data)}\n` : `${human}\n`);
    },
    progress(text) {
      if (json) return { done: () => {} };
      if (!tty) {
        process.stderr.write(`${text}\n`);
        return { done: (final) => final && process.stderr.write(`${final}\n`) };
      }
      let frame = 0;
      const timer = setInterval(
        () => process.stderr.write(`\r${FRAMES[frame++ % FRAMES.length]} ${text}`),
        80,
      );
      return {
        done(final) {
          clearInterval(timer);
          process.stderr.write(`\r\x1b[2K${final ? `${final}\n` : ""}`);
        },
      };
    },
    line(text) {
      // On a terminal, clear the spinner's line first; it redraws below on its next frame.
      if (!json) process.stderr.write(tty ? `\r\x1b[2K${text}\n` : `${text}\n`);
    },
  };
}

/** Left-aligned columns. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const format = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [format(header), ...rows.map(format)].join("\n");
}

/** "3m12s" style durations. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}
