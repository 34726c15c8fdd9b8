import { fileURLToPath } from "node:url";

/** File name of the injected method server, inside images and next to this module. */
export const SERVER_FILE_NAME = "affinetes_server.py";

/**
 * The environment variable that hands a method server its token: given one, the server
 * answers only requests carrying `Authorization: Bearer <token>` (`GET /health` excepted).
 */
export const AUTH_TOKEN_VARIABLE = "AFFINETES_AUTH_TOKEN";

/** Absolute path of the method server script shipped with this package. */
export function serverScriptPath(): string {
  // The build copies the .py file next to the compiled module, so this works from src/ and dist/.
  return fileURLToPath(new URL(`./${SERVER_FILE_NAME}`, import.meta.url));
}

/** Absolute path of a function runner shipped with this package (run inside containers by `app.function`). */
export function functionRunnerPath(language: "python" | "node"): string {
  const file = language === "python" ? "function_runner.py" : "function-runner.mjs";
  return fileURLToPath(new URL(`./${file}`, import.meta.url));
}
