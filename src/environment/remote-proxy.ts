import type { Environment } from "./environment.js";

// Names probed by promises, serializers and test frameworks: never remote methods.
const NOT_REMOTE = new Set([
  "then",
  "catch",
  "finally",
  "toJSON",
  "asymmetricMatch",
  "nodeType",
  "$$typeof",
  "constructor",
]);

/**
 * Wraps an environment so that any property it does not have is a remote method:
 * `env.add({ a: 1 })` is `env.call("add", { a: 1 })`. Names starting with `_` are never
 * remote (the server hides them), which also keeps `await env` and inspection sane.
 */
export function remoteProxy<E extends Environment>(env: E): E {
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(env, {
    get(target, prop, receiver) {
      if (typeof prop === "symbol" || prop in target) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== "function") return value;
        // Bind to the real object so methods keep access to its private state.
        if (!bound.has(prop)) bound.set(prop, (value as (...a: unknown[]) => unknown).bind(target));
        return bound.get(prop);
      }
      if (NOT_REMOTE.has(prop) || prop.startsWith("_")) return undefined;
      if (!bound.has(prop)) {
        bound.set(
          prop,
          (args?: Parameters<Environment["call"]>[1], options?: Parameters<Environment["call"]>[2]) =>
            target.call(prop, args, options),
        );
      }
      return bound.get(prop);
    },
    has(target, prop) {
      return prop in target;
    },
  });
}
