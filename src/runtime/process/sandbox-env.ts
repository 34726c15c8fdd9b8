import { ValidationError } from "../../errors.js";
import { INSTANCE_TAG_VARIABLE } from "../../util/tagged-processes.js";
import { LAUNCHER_PATH } from "../system-tool.js";

/** `PATH` inside a confined sandbox, unless its user sets another. */
export const SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Checks variables meant for inside a sandbox: names are identifiers, values hold no NUL
 * (neither survives a command line or an environment block), and the tag affinetes uses
 * to find a command's processes is not theirs to set.
 */
export function validateSandboxEnv(env: Readonly<Record<string, string>> | undefined, option: string): void {
  for (const [name, value] of Object.entries(env ?? {})) {
    if (!NAME.test(name)) {
      throw new ValidationError(
        option,
        `variable names are identifiers ([A-Za-z_][A-Za-z0-9_]*): ${JSON.stringify(name)}`,
      );
    }
    if (name === INSTANCE_TAG_VARIABLE) throw new ValidationError(option, `${name} is reserved`);
    if (typeof value !== "string" || value.includes("\0")) {
      throw new ValidationError(option, `the value of ${name} is a string without NUL bytes`);
    }
  }
}

/**
 * The whole environment of a launcher (the isolation tool and what enters the sandbox's
 * namespaces): system folders on `PATH` and the instance's tag, nothing of the request
 * (a `PATH` or `LD_PRELOAD` there would run code outside the sandbox). The state folder's
 * variable stays when set, so the tests' leak check finds launchers left running.
 */
export function launcherEnv(tag: string): NodeJS.ProcessEnv {
  const stateDir = process.env.AFFINETES_STATE_DIR;
  return {
    PATH: LAUNCHER_PATH,
    [INSTANCE_TAG_VARIABLE]: tag,
    ...(stateDir ? { AFFINETES_STATE_DIR: stateDir } : {}),
  };
}

/** The variables a confined command sees: defaults, the instance's, the command's, and the tag last. */
export function sandboxVariables(
  home: string,
  tag: string,
  ...layers: ReadonlyArray<Readonly<Record<string, string>> | undefined>
): Array<[string, string]> {
  // a Map: a variable named __proto__ is a variable, not an object's prototype
  const merged = new Map<string, string>([
    ["PATH", SANDBOX_PATH],
    ["HOME", home],
  ]);
  for (const layer of layers)
    for (const [name, value] of Object.entries(layer ?? {})) merged.set(name, value);
  merged.set(INSTANCE_TAG_VARIABLE, tag);
  return [...merged];
}
