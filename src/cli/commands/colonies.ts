import { Command } from "commander";
import { readFileSync } from "node:fs";
import { Colonies, funcSpec, newIdentity } from "../../queue/client/colonies.js";
import type { FunctionSpec, Process } from "../../queue/client/colonies.js";
import { idOf } from "../../queue/crypto.js";
import { MAX_DEADLINE_S, MAX_PRIORITY } from "../../queue/messages.js";
import { UsageError } from "../exit-codes.js";
import type { Output, OutputFactory } from "../output.js";
import { table } from "../output.js";
import { collect, parseJsonOrString, parsePositiveInt } from "../parse-values.js";

const STATES = ["waiting", "running", "success", "failed", "cancelled"] as const;

interface Connection {
  server?: string;
  bearer?: string;
  prvkey?: string;
  colony?: string;
  json?: boolean;
}

/**
 * `afs colonies ...`: the process queue from the command line, configured as the
 * ColonyOS CLI is (COLONIES_SERVER_HOST/PORT/TLS, COLONIES_PRVKEY, COLONIES_COLONY_NAME).
 */
export function coloniesCommand(output: OutputFactory): Command {
  const command = new Command("colonies").description(
    "the process queue (ColonyOS protocol): keys, colonies, executors, processes, workflows",
  );
  const connected = (name: string, description: string) =>
    new Command(name)
      .description(description)
      .option(
        "--server <url>",
        "the server (default from COLONIES_SERVER_HOST/PORT/TLS, else http://127.0.0.1:8008)",
      )
      .option("--prvkey <hex>", "the private key signing the request (default COLONIES_PRVKEY)")
      .option(
        "--bearer <key>",
        "the queue key of a server started with --queue-key (default COLONIES_BEARER)",
      )
      .option("--colony <name>", "the colony (default COLONIES_COLONY_NAME)")
      .option("--json", "machine-readable output");

  command.addCommand(
    new Command("keygen")
      .description("a new private key and the id it signs as")
      .option("--json", "machine-readable output")
      .action((flags: { json?: boolean }) => {
        const identity = newIdentity();
        output(flags).result(`private key: ${identity.privateKey}\nid:          ${identity.id}`, identity);
      }),
  );
  command.addCommand(
    new Command("id")
      .description("the id of a private key")
      .argument("<prvkey>", "64 hex characters")
      .action((prvkey: string) => output().result(idOf(prvkey), { id: idOf(prvkey) })),
  );
  command.addCommand(
    connected("add-colony", "add a colony (signed by the server owner's key)")
      .requiredOption("--name <name>", "the colony's name")
      .requiredOption("--colony-id <id>", "the colony owner's id (afs colonies keygen)")
      .action((flags: Connection & { name: string; colonyId: string }) =>
        withClient(flags, output, async (c, key, out) => {
          const colony = await c.addColony({ colonyid: flags.colonyId, name: flags.name }, key);
          out.result(`colony ${colony.name} added`, colony);
        }),
      ),
  );
  command.addCommand(
    connected(
      "add-executor",
      "add an executor to the colony and approve it (signed by the colony owner's key)",
    )
      .requiredOption("--name <name>", "the executor's name")
      .requiredOption("--type <type>", "the executor type it serves")
      .requiredOption("--executor-id <id>", "its id (afs colonies keygen)")
      .action((flags: Connection & { name: string; type: string; executorId: string }) =>
        withClient(flags, output, async (c, key, out) => {
          const colony = colonyOf(flags);
          const executor = await c.addExecutor(
            {
              executorid: flags.executorId,
              executortype: flags.type,
              executorname: flags.name,
              colonyname: colony,
            },
            key,
          );
          await c.approveExecutor(colony, flags.name, key);
          out.result(`executor ${executor.executorname} added and approved`, { ...executor, state: 1 });
        }),
      ),
  );
  command.addCommand(
    connected("executors", "the colony's executors").action((flags: Connection) =>
      withClient(flags, output, async (c, key, out) => {
        const executors = await c.getExecutors(colonyOf(flags), key);
        const rows = executors.map((e) => [
          e.executorname,
          e.executortype,
          ["pending", "approved", "rejected"][e.state] ?? String(e.state),
          e.lastheardfromtime,
        ]);
        out.result(
          rows.length ? table(["NAME", "TYPE", "STATE", "LAST HEARD"], rows) : "No executors.",
          executors,
        );
      }),
    ),
  );
  command.addCommand(
    connected("submit", "submit a function spec")
      .requiredOption("--func <name>", "the function")
      .requiredOption("--type <executortype>", "the executor type that runs it")
      .option("--arg <value>", "a positional argument; JSON when it parses (repeatable)", collect, [])
      .option("--priority <n>", "priority (each point is worth a day of queue age)", "0")
      .option("--max-exec-time <seconds>", "execution time limit")
      .option("--max-retries <n>", "retries after execution timeouts")
      .action(
        (
          flags: Connection & {
            func: string;
            type: string;
            arg: string[];
            priority: string;
            maxExecTime?: string;
            maxRetries?: string;
          },
        ) =>
          withClient(flags, output, async (c, key, out) => {
            const spec = funcSpec({
              funcname: flags.func,
              colonyname: colonyOf(flags),
              executortype: flags.type,
              args: flags.arg.map(parseJsonOrString),
              priority: integerFlag("--priority", flags.priority, -MAX_PRIORITY, MAX_PRIORITY),
              ...(flags.maxExecTime
                ? { maxexectime: parsePositiveInt("--max-exec-time", flags.maxExecTime, MAX_DEADLINE_S) }
                : {}),
              ...(flags.maxRetries
                ? { maxretries: integerFlag("--max-retries", flags.maxRetries, -1, MAX_DEADLINE_S) }
                : {}),
            });
            const process = await c.submitFuncSpec(spec, key);
            out.result(process.processid, process);
          }),
      ),
  );
  command.addCommand(
    connected("ps", "the colony's processes in a state")
      .option("--state <state>", STATES.join(", "), "waiting")
      .option("--count <n>", "at most this many (up to 100)", "100")
      .action((flags: Connection & { state: string; count: string }) =>
        withClient(flags, output, async (c, key, out) => {
          const state = STATES.indexOf(flags.state as (typeof STATES)[number]);
          if (state < 0) throw new UsageError(`--state must be one of ${STATES.join(", ")}`);
          const processes = await c.getProcesses(
            colonyOf(flags),
            state,
            parsePositiveInt("--count", flags.count, 100),
            key,
          );
          out.result(processTable(processes), processes);
        }),
      ),
  );
  command.addCommand(
    connected("get", "one process")
      .argument("<processid>")
      .action((processid: string, flags: Connection) =>
        withClient(flags, output, async (c, key, out) => {
          const p = await c.getProcess(processid, key);
          out.result(JSON.stringify(p, null, 2), p);
        }),
      ),
  );
  command.addCommand(
    connected("cancel", "cancel a waiting or running process (a workflow's: its whole workflow)")
      .argument("<processid>")
      .option("--workflow", "the id is a workflow's (process graph id)")
      .action((id: string, flags: Connection & { workflow?: boolean }) =>
        withClient(flags, output, async (c, key, out) => {
          if (flags.workflow) await c.cancelProcessGraph(id, key);
          else await c.cancelProcess(id, key);
          out.result(`cancelled ${id}`, { cancelled: id });
        }),
      ),
  );
  command.addCommand(
    connected("rm", "remove a process outside workflows, or (--workflow) a workflow that is not running")
      .argument("<id>")
      .option("--workflow", "the id is a workflow's (process graph id)")
      .action((id: string, flags: Connection & { workflow?: boolean }) =>
        withClient(flags, output, async (c, key, out) => {
          if (flags.workflow) await c.removeProcessGraph(id, key);
          else await c.removeProcess(id, key);
          out.result(`removed ${id}`, { removed: id });
        }),
      ),
  );
  command.addCommand(
    connected(
      "workflow",
      "submit a workflow: a JSON file holding a list of function specs (dependencies by nodename)",
    )
      .argument("<file>")
      .action((file: string, flags: Connection) =>
        withClient(flags, output, async (c, key, out) => {
          let specs: FunctionSpec[];
          try {
            specs = JSON.parse(readFileSync(file, "utf8")) as FunctionSpec[];
          } catch (err) {
            throw new UsageError(`${file}: ${(err as Error).message}`);
          }
          if (!Array.isArray(specs)) throw new UsageError(`${file} must hold a JSON list of function specs`);
          const graph = await c.submitWorkflow(colonyOf(flags), specs, key);
          out.result(graph.processgraphid, graph);
        }),
      ),
  );
  return command;
}

function processTable(processes: readonly Process[]): string {
  if (processes.length === 0) return "No processes.";
  return table(
    ["ID", "FUNCTION", "TYPE", "STATE", "SUBMITTED", "RETRIES"],
    processes.map((p) => [
      p.processid.slice(0, 12),
      p.spec.funcname,
      p.spec.conditions.executortype,
      STATES[p.state] ?? String(p.state),
      p.submissiontime,
      String(p.retries),
    ]),
  );
}

/** The server URL: --server, else the ColonyOS CLI's variables, else the local `afs serve`. */
function serverOf(flags: Connection): string {
  if (flags.server) return flags.server;
  const host = process.env.COLONIES_SERVER_HOST;
  if (!host) return "http://127.0.0.1:8008";
  const tls = process.env.COLONIES_SERVER_TLS === "true";
  return `${tls ? "https" : "http"}://${host}:${process.env.COLONIES_SERVER_PORT ?? "50080"}`;
}

/** An integer flag in [min, max] (the server's own bounds, so a bad value never leaves the machine). */
function integerFlag(flag: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || value < min || value > max)
    throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got ${text}`);
  return value;
}

function colonyOf(flags: Connection): string {
  const colony = flags.colony ?? process.env.COLONIES_COLONY_NAME;
  if (!colony) throw new UsageError("give --colony (or set COLONIES_COLONY_NAME)");
  return colony;
}

async function withClient(
  flags: Connection,
  output: OutputFactory,
  run: (colonies: Colonies, privateKey: string, out: Output) => Promise<void>,
): Promise<void> {
  const key = flags.prvkey ?? process.env.COLONIES_PRVKEY;
  if (!key) throw new UsageError("give --prvkey (or set COLONIES_PRVKEY)");
  if (!/^[0-9a-fA-F]{64}$/.test(key)) throw new UsageError("--prvkey must be 64 hex characters");
  const bearer = flags.bearer ?? process.env.COLONIES_BEARER;
  const colonies = new Colonies(serverOf(flags), bearer ? { bearer } : {});
  try {
    await run(colonies, key, output(flags));
  } finally {
    await colonies.disconnect();
  }
}
