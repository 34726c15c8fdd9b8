// Runs one exported function of a JavaScript/TypeScript module for the affinetes control plane.
//
//   node function-runner.mjs CALL_DIR FILE EXPORT
//   node --input-type=module -e "$(cat function-runner.mjs)" CALL_DIR FILE EXPORT   (how the SDK runs it)
//
// Reads CALL_DIR/args.json ({"args": [...], "kwargs": {...}}), calls EXPORT (kwargs, when
// given, as one object argument after the positional ones), awaits it, and writes
// CALL_DIR/result.json: {"result": ...} or {"error": {"type", "message", "traceback"}} (exit 1).
// TypeScript files need a Node that strips types (>= 22.6 with --experimental-strip-types).
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

// the last three: with -e there is no script path in argv
const [callDir, file, name] = process.argv.slice(-3);

function write(document) {
  const path = join(callDir, "result.json");
  writeFileSync(`${path}.tmp`, JSON.stringify(document));
  renameSync(`${path}.tmp`, path); // the client never reads half a result
}

try {
  const payload = JSON.parse(readFileSync(join(callDir, "args.json"), "utf8"));
  const module = await import(pathToFileURL(resolve(file)).href);
  const fn = module[name];
  if (typeof fn !== "function") throw new TypeError(`${file} exports no function ${name}`);
  const kwargs = payload.kwargs ?? {};
  const args = [...(payload.args ?? []), ...(Object.keys(kwargs).length ? [kwargs] : [])];
  write({ result: (await fn(...args)) ?? null });
} catch (error) {
  console.error(error);
  write({
    error: {
      type: error?.name ?? "Error",
      message: error?.message ?? String(error),
      traceback: error?.stack ?? String(error),
    },
  });
  process.exitCode = 1;
}
