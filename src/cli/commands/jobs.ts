import { Command } from "commander";
import { Host, getJob, listJobs } from "../../deploy/index.js";
import type { JobInfo } from "../../deploy/index.js";
import type { Output, OutputFactory } from "../output.js";
import { table } from "../output.js";
import { parsePositiveInt, parseSeconds } from "../parse-values.js";

interface HostFlags {
  host: string;
  key?: string;
  root?: string;
  json?: boolean;
}

/** `afs jobs ls|logs|wait|kill --host H [NAME]`: the detached jobs of a host (`afs deploy --detach`). */
export function jobsCommand(output: OutputFactory): Command {
  const command = new Command("jobs").description("detached jobs on an SSH host: list, logs, wait, kill");
  const onHost = (name: string, description: string) =>
    new Command(name)
      .description(description)
      .requiredOption("--host <host>", "user@host[:port], ssh://user@host[:port] or a ~/.ssh/config name")
      .option("--key <file>", "private key file")
      .option("--root <path>", "where jobs live on the host", "~/.affinetes")
      .option("--json", "machine-readable output");

  command.addCommand(
    onHost("ls", "the host's jobs").action((flags: HostFlags) =>
      withHost(flags, output, async (host, out) => {
        const jobs = await listJobs(host, rootOf(flags));
        out.result(jobTable(jobs), jobs);
      }),
    ),
  );
  command.addCommand(
    onHost("logs", "a job's output (merged stdout and stderr)")
      .argument("<name>")
      .option("--tail <lines>", "only the last lines")
      .option("-f, --follow", "keep printing as the job writes, until it ends")
      .action((name: string, flags: HostFlags & { tail?: string; follow?: boolean }) => {
        // flags first: a bad one is a usage error, before any connection
        const tail = flags.tail !== undefined ? parsePositiveInt("--tail", flags.tail) : undefined;
        return withHost(flags, output, async (host, out) => {
          const job = await getJob(host, name, rootOf(flags));
          const logs = await job.logs(tail !== undefined ? { tail } : {});
          if (!flags.follow || out.json) return out.result(logs.text.replace(/\n$/, ""), logs);
          process.stdout.write(logs.text);
          for await (const line of job.follow({ offset: logs.offset })) process.stdout.write(`${line}\n`);
        });
      }),
  );
  command.addCommand(
    onHost("wait", "wait for a job to end; exits with its exit code")
      .argument("<name>")
      .option("--timeout <seconds>", "give up after this long (exit 4)")
      .action((name: string, flags: HostFlags & { timeout?: string }) => {
        const timeout =
          flags.timeout !== undefined ? { timeoutMs: parseSeconds("--timeout", flags.timeout) } : {};
        return withHost(flags, output, async (host, out) => {
          const job = await getJob(host, name, rootOf(flags));
          const info = await job.wait(timeout);
          out.result(
            `${info.name}: ${info.state}${info.exitCode !== undefined ? ` (${info.exitCode})` : ""}`,
            info,
          );
          process.exitCode = info.exitCode ?? 1;
        });
      }),
  );
  command.addCommand(
    onHost("kill", "stop a running job and everything it started")
      .argument("<name>")
      .action((name: string, flags: HostFlags) =>
        withHost(flags, output, async (host, out) => {
          const info = await (await getJob(host, name, rootOf(flags))).kill();
          out.result(`${info.name}: ${info.state}`, info);
        }),
      ),
  );
  return command;
}

async function withHost(
  flags: HostFlags,
  output: OutputFactory,
  work: (host: Host, out: Output) => Promise<void>,
): Promise<void> {
  const host = await Host.connect(flags.host, flags.key ? { key: flags.key } : {});
  try {
    await work(host, output(flags));
  } finally {
    host.close();
  }
}

function rootOf(flags: HostFlags): { root?: string } {
  return flags.root ? { root: flags.root } : {};
}

function jobTable(jobs: readonly JobInfo[]): string {
  if (jobs.length === 0) return "No jobs.";
  return table(
    ["NAME", "STATE", "EXIT", "STARTED", "COMMAND"],
    jobs.map((j) => [
      j.name,
      j.state,
      j.exitCode !== undefined ? String(j.exitCode) : "",
      j.startedAt,
      j.command.length > 60 ? `${j.command.slice(0, 57)}...` : j.command,
    ]),
  );
}
