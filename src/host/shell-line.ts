import { ValidationError } from "../errors.js";
import { shellQuote } from "../util/shell-quote.js";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Checks variable names, which sh cannot quote: `export A;B=1` would run `B=1` as a command. */
export function checkEnvNames(env: Readonly<Record<string, string>>): void {
  for (const name of Object.keys(env)) {
    if (!ENV_NAME.test(name))
      throw new ValidationError("env", `${JSON.stringify(name)} is not a variable name`);
  }
}

/** `command` with `env` exported and run in `cwd`, as one shell line (for a host reached over SSH). */
export function wrapCommand(
  command: string,
  options: { cwd?: string | undefined; env?: Readonly<Record<string, string>> | undefined },
): string {
  const env = options.env ?? {};
  checkEnvNames(env);
  const exports = Object.entries(env)
    .map(([k, v]) => `export ${k}=${shellQuote(v)}; `)
    .join("");
  const cd = options.cwd ? `cd ${shellQuote(options.cwd)} && ` : "";
  return `${exports}${cd}${command}`;
}
