import { fileURLToPath } from "node:url";

/** File name of the injected method server, inside images and next to this module. */
export const SERVER_FILE_NAME = "affinetes_server.py";

/** Absolute path of the method server script shipped with this package. */
export function serverScriptPath(): string {
  // The build copies the .py file next to the compiled module, so this works from src/ and dist/.
  return fileURLToPath(new URL(`./${SERVER_FILE_NAME}`, import.meta.url));
}
