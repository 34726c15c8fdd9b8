import { readFileSync } from "node:fs";
import { z } from "zod";
import { NotFoundError, ValidationError } from "../errors.js";
import { parseOptions } from "../util/validate.js";
import type { EnvironmentConfig, StartRequest } from "./request-schemas.js";
import { predefinedEnvironment } from "./request-schemas.js";

const catalogSchema = z.record(z.string().min(1), predefinedEnvironment);

/**
 * The predefined environments of `--environments envs.json` (`{"name": {container_type,
 * image, ...}}`), and how a start request's `environment_config` resolves against them.
 */
export class EnvironmentCatalog {
  private constructor(private readonly entries: Readonly<Record<string, EnvironmentConfig>>) {}

  static empty(): EnvironmentCatalog {
    return new EnvironmentCatalog({});
  }

  /** Reads and validates the file; a bad entry is a `ValidationError` naming it. */
  static load(path: string): EnvironmentCatalog {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, "utf8"));
    } catch (err) {
      throw new ValidationError("--environments", `${path}: ${(err as Error).message}`);
    }
    return new EnvironmentCatalog(parseOptions(catalogSchema, json, `--environments ${path}`));
  }

  get names(): string[] {
    return Object.keys(this.entries).sort();
  }

  /**
   * The nested configuration of a start request, whichever form it came in: a predefined
   * entry's name, an entry's `name` with fields overriding it (`env` and `resources`
   * merge key by key), a full configuration, or the flat form. An entry `usable` refuses
   * is answered as unknown, and only usable entries are named in the error.
   */
  resolve(request: StartRequest, usable: (name: string) => boolean = () => true): EnvironmentConfig {
    const config = request.environment_config;
    if (config === undefined) {
      return {
        container_type: request.container_type ?? "docker",
        ...(request.container_image !== undefined ? { image: request.container_image } : {}),
        ...(request.timeout !== undefined ? { timeout: request.timeout } : {}),
        ...(request.resources !== undefined ? { resources: request.resources } : {}),
      };
    }
    const { name, ...overrides } = config;
    if (name === undefined) return { ...overrides, container_type: overrides.container_type ?? "docker" };
    const base = this.entry(name, usable);
    return {
      ...base,
      ...overrides,
      container_type: overrides.container_type ?? base.container_type,
      ...(base.env || overrides.env ? { env: { ...base.env, ...overrides.env } } : {}),
      ...(base.resources || overrides.resources
        ? { resources: { ...base.resources, ...overrides.resources } }
        : {}),
    };
  }

  private entry(name: string, usable: (name: string) => boolean): EnvironmentConfig {
    // own entries only: "constructor" or "__proto__" must not resolve to Object's
    const entry = Object.hasOwn(this.entries, name) ? this.entries[name] : undefined;
    if (entry && usable(name)) return entry;
    const names = this.names.filter(usable);
    const known = names.length
      ? `known: ${names.join(", ")}`
      : this.names.length
        ? "none is allowed for your key"
        : "this server has none (--environments)";
    throw new NotFoundError("environment", name, `No predefined environment ${name}: ${known}`);
  }
}
