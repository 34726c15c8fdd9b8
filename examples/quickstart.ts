/**
 * The main job: start the calculator environment and call it.
 *
 *   npm start                      # docker when an engine answers, else a local process
 *   npm start -- --mode process    # force the embedded process runtime
 */
import { fileURLToPath } from "node:url";
import { BuildError, RemoteError, loadEnv } from "affinetes";
import type { LoadEnvOptions, RemoteMethod } from "affinetes";

/** The calculator's methods, declared for type checking (optional: any name works untyped). */
interface Calculator {
  add: RemoteMethod;
  divide: RemoteMethod;
  stats: RemoteMethod;
}

const envPath = fileURLToPath(new URL("./calculator", import.meta.url));

export async function main(mode?: "docker" | "process"): Promise<void> {
  const options: LoadEnvOptions = { envPath, ...(mode ? { mode } : {}) };
  await using env = await loadCalculator(options);
  console.log(`✓ Environment started: ${env.name} (${env.mode}, ${env.endpoint})`);
  console.log("  methods:", (await env.listMethods()).map((m) => `${m.name}${m.signature}`).join(", "));
  console.log("  add(a=1, b=2) =", await env.add({ a: 1, b: 2 }));
  console.log("  stats([1, 2, 3, 4]) =", JSON.stringify(await env.stats({ values: [1, 2, 3, 4] })));
  try {
    await env.divide({ a: 1, b: 0 });
  } catch (error) {
    if (!(error instanceof RemoteError)) throw error;
    console.log(`  divide(a=1, b=0) raised ${error.errorType}: ${error.remoteMessage} (traceback kept)`);
  }
}

/** Docker when an engine answers; if the image cannot be built there (no base image, no registry), a local process. */
async function loadCalculator(options: LoadEnvOptions) {
  try {
    return await loadEnv<Calculator>(options);
  } catch (error) {
    if (!(error instanceof BuildError) || options.mode) throw error;
    console.log(`! Docker build failed: ${error.message.split("\n")[0]}`);
    console.log(
      "  (no registry? point AFFINETES_BASE_IMAGE at a local Python image) Using the process runtime instead.",
    );
    return loadEnv<Calculator>({ ...options, mode: "process" });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const modeIndex = process.argv.indexOf("--mode");
  const mode = modeIndex > 0 ? process.argv[modeIndex + 1] : undefined;
  if (mode !== undefined && mode !== "docker" && mode !== "process") {
    console.error(`--mode must be "docker" or "process", got ${JSON.stringify(mode)}`);
    process.exit(2);
  }
  main(mode).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
