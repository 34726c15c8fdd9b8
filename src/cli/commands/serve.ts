import { Command, Option } from "commander";
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { stateDir } from "../../config.js";
import { isPostgresUrl } from "../../store/database-location.js";
import { openService } from "../../service/open-service.js";
import { UsageError } from "../exit-codes.js";
import type { OutputFactory } from "../output.js";
import { collect, parsePositiveInt, parseSeconds } from "../parse-values.js";
import { REQUEST_LIMITS } from "../../rollout/request-schemas.js";
import { parseDefaultResources, parseLimits, parseNetworkFlag } from "../service-flags.js";

/** The largest output cap: each stream of a command is held in memory up to it. */
const MAX_OUTPUT_BYTES = 1024 ** 3;

interface ServeFlags {
  runner: "local" | "slurm";
  sbatchArg: string[];
  environments?: string;
  port: string;
  host: string;
  maxResources?: string;
  defaultResources?: string;
  defaultNetwork?: string;
  db?: string;
  apiKey?: string;
  apiKeys?: string;
  disksDir?: string;
  maxFileBytes?: string;
  maxContextBytes?: string;
  coloniesServerId?: string;
  queueKey?: string;
  serviceId?: string;
  idleTtl?: string;
  onExit: "stop" | "keep";
  maxOutputBytes?: string;
  defaultTimeout?: string;
  json?: boolean;
}

export function serveCommand(output: OutputFactory): Command {
  const command: Command = new Command("serve")
    .description("run the rollout service: start instances, run commands in them, close them (REST)")
    .addOption(
      new Option("--runner <runner>", "where instances run: this machine, or Slurm jobs")
        .choices(["local", "slurm"])
        .default("local"),
    )
    .option(
      "--sbatch-arg <arg>",
      "sbatch argument of every job with --runner slurm, e.g. --sbatch-arg=--partition=debug (repeatable)",
      collect,
      [],
    )
    .option(
      "--environments <file>",
      'predefined environments: {"name": {"container_type": ..., "image": ...}}',
    )
    .option("--port <port>", "port to listen on (0 picks a free one)", "8008")
    .option("--host <address>", "address to listen on; other than loopback needs --api-key", "127.0.0.1")
    .option("--max-resources <json>", 'tracked limits, e.g. \'{"instances":10,"cpus":32,"memory_gb":128}\'')
    .option(
      "--default-resources <json>",
      'what an instance is charged of a key its request leaves out (each tracked key: 1 unless given), e.g. \'{"cpus":2,"memory_gb":4}\'',
    )
    .option(
      "--default-network <policy>",
      'network of instances and /v1 containers whose request (and predefined environment) give none: none, full (the default) or \'{"allow":["host[:port]"]}\'',
    )
    .option(
      "--db <path|url>",
      "the service's state: a SQLite file (default in the state dir) or postgres://user:pass@host/db",
    )
    .option("--api-key <key>", "require Authorization: Bearer <key> on every request (the admin's key)")
    .option(
      "--api-keys <file>",
      'more keys and their principals: {"<key>": "alice", "<key>": {"name": "ops", "admin": true}, "<key>": {"name": "bob", "allow": {"container_types": ["docker"], "environments": ["swe"]}}}',
    )
    .option(
      "--colonies-server-id <id>",
      "serve the process queue (ColonyOS protocol, POST /api) owned by this server id (default COLONIES_SERVER_ID)",
    )
    .option(
      "--queue-key <key>",
      "also require Authorization: Bearer <key> on the queue's /api and /pubsub (default AFFINETES_QUEUE_KEY)",
    )
    .option(
      "--disks-dir <dir>",
      "where the control plane's disks keep their files (default in the state dir)",
    )
    .option("--max-file-bytes <n>", "cap of one file uploaded to a disk (413 past it)", String(2 ** 30))
    .option(
      "--max-context-bytes <n>",
      "cap of an image build context uploaded to /v1/images (413 past it)",
      String(512 * 2 ** 20),
    )
    .option(
      "--service-id <id>",
      "this service's identity in the store; a restart with the same id adopts its instances (default host:port)",
    )
    .option("--idle-ttl <seconds>", "close instances that ran no command for this long")
    .addOption(
      new Option("--on-exit <what>", "on SIGINT/SIGTERM: stop the instances, or keep them for the next start")
        .choices(["stop", "keep"])
        .default("stop"),
    )
    .option(
      "--max-output-bytes <n>",
      "cap of a command's output per stream; head and tail are kept",
      "10485760",
    )
    .option("--default-timeout <seconds>", "command timeout when the request and instance give none", "600")
    .action(async (flags: ServeFlags) => {
      output(flags);
      const port = flags.port === "0" ? 0 : parsePositiveInt("--port", flags.port, 65_535);
      const loopback = /^(127\.|localhost$|::1$)/.test(flags.host);
      if (!loopback && !flags.apiKey && !flags.apiKeys)
        throw new UsageError(`--host ${flags.host} is not loopback: give --api-key or --api-keys`);
      const limits = parseLimits(flags.maxResources);
      const defaultResources = parseDefaultResources(flags.defaultResources);
      const defaultNetwork = parseNetworkFlag(flags.defaultNetwork);
      const idleTtlS =
        flags.idleTtl === undefined ? undefined : parseSeconds("--idle-ttl", flags.idleTtl) / 1000;
      const maxOutputBytes = parsePositiveInt(
        "--max-output-bytes",
        flags.maxOutputBytes ?? "10485760",
        MAX_OUTPUT_BYTES,
      );
      const defaultTimeoutS =
        parseSeconds("--default-timeout", flags.defaultTimeout ?? "600", REQUEST_LIMITS.maxTimeoutS) / 1000;
      if (flags.serviceId !== undefined && !/^[\x21-\x7e]{1,200}$/.test(flags.serviceId))
        throw new UsageError("--service-id is 1 to 200 printable characters, no spaces");
      if (flags.sbatchArg.some((a) => a.trim() === "" || /[\0\r\n]/.test(a)))
        throw new UsageError("--sbatch-arg must be one non-empty line, e.g. --sbatch-arg=--partition=debug");
      const coloniesServerId = flags.coloniesServerId ?? process.env.COLONIES_SERVER_ID;
      const queueKey = flags.queueKey ?? process.env.AFFINETES_QUEUE_KEY;
      if (queueKey === "") throw new UsageError("--queue-key (or AFFINETES_QUEUE_KEY) must not be empty");
      if (coloniesServerId && !loopback && !queueKey)
        process.stderr.write(
          "warning: the process queue (/api, /pubsub) is served off loopback without --queue-key: its signed " +
            "envelopes can be replayed by whoever sees them; serve it behind TLS and give --queue-key " +
            "(docs/colonyos-protocol.md §10)\n",
        );
      if (flags.sbatchArg.length && flags.runner !== "slurm")
        throw new UsageError("--sbatch-arg needs --runner slurm");
      const opened = await openService({
        runner: flags.runner,
        sbatchArgs: flags.sbatchArg,
        environmentsFile: flags.environments,
        db: flags.db,
        serviceId: flags.serviceId ?? defaultServiceId(flags.port, flags.db),
        limits,
        defaultResources,
        defaultNetwork,
        idleTtlS,
        maxOutputBytes,
        defaultTimeoutS,
        apiKey: flags.apiKey,
        apiKeysFile: flags.apiKeys,
        disksDir: flags.disksDir,
        maxFileBytes: parsePositiveInt("--max-file-bytes", flags.maxFileBytes ?? String(2 ** 30)),
        maxContextBytes: parsePositiveInt(
          "--max-context-bytes",
          flags.maxContextBytes ?? String(512 * 2 ** 20),
        ),
        coloniesServerId,
        queueKey,
        version: command.parent?.version() ?? "0.0.0",
      });
      const { app, recovered } = opened;
      if (recovered.adopted.length + recovered.released.length + recovered.removed.length > 0) {
        process.stdout.write(
          `recovered: ${recovered.adopted.length} adopted, ${recovered.released.length} released, ` +
            `${recovered.removed.length} orphans stopped\n`,
        );
      }
      const address = await app.listen({ port, host: flags.host });
      process.stdout.write(`affinetes rollout service listening on ${address}\n`);
      const stop = async () => {
        await opened.close({ stopInstances: flags.onExit === "stop" });
        process.exit(0);
      };
      process.once("SIGINT", () => void stop());
      process.once("SIGTERM", () => void stop());
      await new Promise(() => {}); // serve until a signal
    });
  return command;
}

/**
 * A service's identity when `--service-id` is not given: `host:port`, stable across
 * restarts. A free port (`--port 0`) is not stable, so the store's location names it
 * then: two such services on one host never take each other's instances for orphans.
 */
function defaultServiceId(port: string, db: string | undefined): string {
  if (port !== "0") return `${hostname()}:${port}`;
  const location = db && isPostgresUrl(db) ? db : resolve(db ?? join(stateDir(), "service.db"));
  return `${hostname()}:db-${createHash("sha256").update(location).digest("hex").slice(0, 12)}`;
}
