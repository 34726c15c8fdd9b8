import { StringDecoder } from "node:string_decoder";

/** Splits output into lines, keeping a partial line (and a split UTF-8 character) for later. */
export class LineSplitter {
  private readonly decoder = new StringDecoder("utf8");
  private partial = "";

  /** `separator`: where lines end (`/\r?\n|\r/` also ends a progress bar's line). */
  constructor(private readonly separator: RegExp = /\n/) {}

  /** The lines `chunk` completes. */
  push(chunk: Buffer | string): string[] {
    const text = typeof chunk === "string" ? chunk : this.decoder.write(chunk);
    const lines = (this.partial + text).split(this.separator);
    this.partial = lines.pop() ?? "";
    return lines;
  }

  /** What is left once the output ended: the last line, when it had no newline. */
  end(): string {
    const rest = this.partial + this.decoder.end();
    this.partial = "";
    return rest;
  }
}
