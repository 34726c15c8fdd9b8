/** The last `count` lines of `text` (all of it when `count` is undefined). */
export function tailLines(text: string, count: number | undefined): string {
  if (count === undefined) return text;
  if (count <= 0) return "";
  const lines = text.split("\n");
  const trailingNewline = lines.at(-1) === "";
  if (trailingNewline) lines.pop();
  const kept = lines.slice(-count).join("\n");
  return trailingNewline && kept ? `${kept}\n` : kept;
}
