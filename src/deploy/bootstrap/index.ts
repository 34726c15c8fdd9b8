import { ValidationError } from "../../errors.js";
import type { BackendName, BootstrapBackend } from "./bootstrap-backend.js";
import { BACKEND_NAMES } from "./bootstrap-backend.js";
import { DockerBackend } from "./docker-backend.js";
import { NoneBackend } from "./none-backend.js";
import { NpmBackend } from "./npm-backend.js";
import { UvBackend } from "./uv-backend.js";
import { VenvBackend } from "./venv-backend.js";

export type {
  BackendName,
  BootstrapBackend,
  BootstrapOptions,
  BootstrapReport,
} from "./bootstrap-backend.js";
export { BACKEND_NAMES } from "./bootstrap-backend.js";
export { detectBackend } from "./detect-backend.js";
export { CONTAINER_LABEL, DockerBackend, PROJECT_LABEL } from "./docker-backend.js";
export { NoneBackend } from "./none-backend.js";
export { NpmBackend } from "./npm-backend.js";
export { UvBackend } from "./uv-backend.js";
export { VenvBackend } from "./venv-backend.js";

const factories: Record<BackendName, () => BootstrapBackend> = {
  npm: () => new NpmBackend(),
  venv: () => new VenvBackend(),
  uv: () => new UvBackend(),
  docker: () => new DockerBackend(),
  none: () => new NoneBackend(),
};

/** The backend of that name; `ValidationError` for any other name. Backends hold no state. */
export function bootstrapBackend(name: BackendName): BootstrapBackend {
  const factory = Object.hasOwn(factories, name) ? factories[name] : undefined;
  if (!factory) {
    throw new ValidationError(
      "bootstrap",
      `unknown backend ${JSON.stringify(name)}; expected one of ${BACKEND_NAMES.join(", ")}`,
    );
  }
  return factory();
}
