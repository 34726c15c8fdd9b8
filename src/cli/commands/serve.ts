import { Command } from "commander";
import { join } from "node:path";
import { stateDir } from "../../config.js";
import { DockerRuntime } from "../../runtime/docker/docker-runtime.js";
import { ProcessRuntime } from "../../runtime/process/process-runtime.js";
import { buildHttpApp } from "../../service/http-app.js";
import { RolloutService } from "../../service/rollout-service.js";
import { SqliteInstanceStore } from "../../store/sqlite-instance-store.js";
import { UsageError } from "../exit-codes.js";
import type { OutputFactory } from "../output.js";
import { parsePositiveInt } from "../parse-values.js";

interface ServeFlags {
  port: string;
  host: string;
  maxResources?: string;
  db?: string;
  apiKey?: string;
  json?: boolean;
}

export function serveCommand(output: OutputFactory): Command {
  return new Command("serve")
    .description("run the rollout service: start instances, run commands in them, close them (REST)")
    .option("--port <port>", "port to listen on (0 picks a free one)", "8008")
    .option("--host <address>", "address to listen on; other than loopback needs --api-key", "127.0.0.1")
    .option("--max-resources <json>", 'tracked limits, e.g. \'{"instances":10,"cpus":32,"memory_gb":128}\'')
    .option("--db <path>", "SQLite file of the service's state (default in the state dir)")
    .option("--api-key <key>", "require Authorization: Bearer <key> on every request")
    .action(async (flags: ServeFlags) => {
      output(flags);
      const port = flags.port === "0" ? 0 : parsePositiveInt("--port", flags.port);
      const loopback = /^(127\.|localhost$|::1$)/.test(flags.host);
      if (!loopback && !flags.apiKey)
        throw new UsageError(`--host ${flags.host} is not loopback: give --api-key`);
      const limits = parseLimits(flags.maxResources);
      const store = new SqliteInstanceStore(flags.db ?? join(stateDir(), "service.db"));
      const docker = new DockerRuntime();
      const dockerAnswers = await docker.ping(2_000).then(
        () => true,
        () => false,
      );
      const service = new RolloutService({
        store,
        limits,
        docker: dockerAnswers ? docker : undefined,
        local: new ProcessRuntime(),
      });
      const app = buildHttpApp(service, { apiKey: flags.apiKey });
      const address = await app.listen({ port, host: flags.host });
      process.stdout.write(`affinetes rollout service listening on ${address}\n`);
      const stop = async () => {
        await app.close();
        await service.shutdown(); // no reconcile across restarts yet: leave nothing running
        await store.close();
        process.exit(0);
      };
      process.once("SIGINT", () => void stop());
      process.once("SIGTERM", () => void stop());
      await new Promise(() => {}); // serve until a signal
    });
}

function parseLimits(text: string | undefined): Record<string, number> {
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--max-resources must be a JSON object: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UsageError("--max-resources must be a JSON object like '{\"instances\":10}'");
  }
  for (const [key, max] of Object.entries(value)) {
    if (typeof max !== "number" || !(max >= 0))
      throw new UsageError(`--max-resources: ${key} must be a number >= 0`);
  }
  return value as Record<string, number>;
}
