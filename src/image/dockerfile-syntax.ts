/**
 * Writing values into a Dockerfile so that no character can change its meaning: quoting
 * for the instructions Docker expands (`ENV`, `WORKDIR`, `COPY`), exec form for commands
 * that shell form cannot hold, and `FROM` rewriting that leaves stage names alone.
 */

/** The Dockerfile's escape character: `\` unless a `# escape=` directive says otherwise. */
export type EscapeChar = "\\" | "`";

/** The escape character a Dockerfile's parser directives choose. */
export function escapeCharOf(content: string): EscapeChar {
  for (const line of content.split("\n")) {
    const directive = /^\s*#\s*([a-zA-Z]+)\s*=\s*(\S*)\s*$/.exec(line);
    if (!directive) break; // directives come first; anything else ends them
    if (directive[1]?.toLowerCase() === "escape") return directive[2] === "`" ? "`" : "\\";
  }
  return "\\";
}

/** A double-quoted word: `$`, `"` and the escape character are escaped, nothing is expanded. */
export function quotedWord(value: string, escape: EscapeChar): string {
  return `"${value.replace(/["$\\`]/g, (c) => ((c === "\\" || c === "`") && c !== escape ? c : escape + c))}"`;
}

/** One argument of a JSON-form `COPY`: Docker still expands `$` and quotes in it, so they are escaped. */
export function jsonWord(value: string, escape: EscapeChar): string {
  return JSON.stringify(
    value.replace(/["'$\\`]/g, (c) => ((c === "\\" || c === "`") && c !== escape ? c : escape + c)),
  );
}

/**
 * A `RUN` of a shell command: shell form when the text survives the Dockerfile parser as
 * it is, else exec form through `/bin/sh -c` (multi-line commands, a trailing escape
 * character that would join the next line, a leading `[` that would read as JSON).
 */
export function runInstruction(command: string, escape: EscapeChar): string {
  const trimmed = command.trimEnd();
  const shellForm =
    !/[\r\n]/.test(command) && !trimmed.endsWith(escape) && !command.trimStart().startsWith("[");
  return shellForm ? `RUN ${command}` : `RUN ${JSON.stringify(["/bin/sh", "-c", command])}`;
}

/**
 * Maps the image of every `FROM` through `rewrite`, except references to earlier stages,
 * references built from build args (`$`), and lines that continue an earlier instruction.
 */
export function rewriteFromLines(content: string, rewrite: (ref: string) => string): string {
  const escape = escapeCharOf(content);
  const stages = new Set<string>();
  let continued = false;
  return content
    .split("\n")
    .map((line) => {
      const isComment = /^\s*#/.test(line);
      const wasContinued = continued;
      if (!isComment && line.trim()) continued = line.trimEnd().endsWith(escape);
      if (wasContinued || isComment) return line;
      const from = /^(\s*FROM\s+(?:--\S+\s+)*)(\S+)(.*)$/i.exec(line);
      if (!from) return line;
      const [, head = "", ref = "", rest = ""] = from;
      const alias = /^\s+AS\s+(\S+)\s*$/i.exec(rest)?.[1];
      const keep = ref.includes("$") || stages.has(ref.toLowerCase());
      if (alias) stages.add(alias.toLowerCase());
      return `${head}${keep ? ref : rewrite(ref)}${rest}`;
    })
    .join("\n");
}
