import { ValidationError } from "../../errors.js";
import { checkEnvNames } from "../../host/shell-line.js";
import { shellQuote } from "../../util/shell-quote.js";

/** A path for sh: quoted, with a leading `~/` left to the shell's `$HOME` (quotes would keep `~` literal). */
export function quotePath(path: string): string {
  if (path === "~") return '"$HOME"';
  return path.startsWith("~/") ? `"$HOME"/${shellQuote(path.slice(2))}` : shellQuote(path);
}

export { checkEnvNames } from "../../host/shell-line.js";

/** `export A='x' B='y'`, or undefined for no variables. Values may use `$PWD` only through `raw`. */
export function exportLine(
  env: Readonly<Record<string, string>>,
  raw: Readonly<Record<string, string>> = {},
): string | undefined {
  checkEnvNames(env);
  const assignments = [
    ...Object.entries(raw).map(([k, v]) => `${k}=${v}`),
    ...Object.entries(env).map(([k, v]) => `${k}=${shellQuote(v)}`),
  ];
  return assignments.length ? `export ${assignments.join(" ")}` : undefined;
}

/**
 * `cd <workspace> && export ... && { <command> }`: the command runs only when the `cd`
 * succeeded. It goes on lines of its own so that a trailing `&` or `# comment` in it
 * cannot swallow the closing brace. `setup` (shell, unquoted) is exported before `env`,
 * which therefore wins (e.g. a caller's own PATH).
 */
export function inWorkspace(
  command: string,
  workspace: string,
  env: Readonly<Record<string, string>> = {},
  setup: Readonly<Record<string, string>> = {},
): string {
  if (!command.trim()) throw new ValidationError("command", "is empty");
  const exports = exportLine(env, setup);
  return [`cd ${quotePath(workspace)}`, ...(exports ? [exports] : []), `{\n${command}\n}`].join(" && ");
}
