import { AbortedError, InstanceStartError } from "../../errors.js";
import type { Deadline } from "../../util/deadline.js";
import type { SandboxPlan } from "../process/sandbox-plan.js";
import { runsAsRoot } from "../process/sandbox-folder.js";
import type { RecordFolder } from "../record-folder.js";
import type { NetworkTools } from "../sandbox-network.js";
import { waitForNetwork } from "../wait-for-network.js";
import { CONTAINER_SERVER_PORT, networkReadyFilePath, portFilePath } from "./job-script.js";
import type { SlurmCommands } from "./slurm-cli.js";
import { isActive, jobState, slurmCommand } from "./slurm-cli.js";
import type { SlurmInstance, SlurmRecord } from "./slurm-instance.js";
import { describe } from "./slurm-instance.js";

/** The waits of a submitted job's start, each failing with why when the job ends or the deadline passes. */
export class JobBoot {
  constructor(
    private readonly commands: SlurmCommands,
    private readonly records: RecordFolder<SlurmRecord>,
    private readonly record: SlurmRecord,
    private readonly instance: SlurmInstance,
  ) {}

  /**
   * Waits for the job to run; returns its node. A job that ends (unless it holds a task,
   * which may) or stays pending is an error naming why.
   */
  async running(deadline: Deadline, task = false): Promise<string> {
    const { record } = this;
    let state = await jobState(this.commands, record.jobId);
    for (let interval = 20; ; interval = Math.min(250, interval * 2)) {
      if (state?.state === "RUNNING" && state.node) return state.node;
      if (task && state && !isActive(state.state) && state.node) return state.node;
      if (!state || !isActive(state.state)) {
        throw new InstanceStartError(
          record.name,
          `it exited before running: Slurm job ${record.jobId} ${describe(state)}`,
          await this.log(),
        );
      }
      if (deadline.fired) throw this.timeout(deadline, `Slurm job ${record.jobId} ${describe(state)}`);
      await deadline.sleep(interval).catch(() => undefined);
      state = await jobState(this.commands, record.jobId);
    }
  }

  /** Waits until the job has made the sandbox's network namespace on its node; records its pid. */
  async network(plan: SandboxPlan, deadline: Deadline): Promise<void> {
    const tools = plan.tools as NetworkTools;
    const pid = await waitForNetwork({
      instance: this.record.name,
      dir: this.records.dir(this.record.name),
      deadline,
      running: () => this.instance.isRunning(),
      logs: () => this.instance.logs({ tail: 20 }),
    });
    this.record.network = { policy: plan.policy.kind, pid, rootless: !runsAsRoot(), nsenter: tools.nsenter };
    await this.records.write(this.record);
  }

  /**
   * Waits until the job's container runs (checked on its node through a job step) and,
   * with `rules`, until the job has set its network rules.
   */
  async container(deadline: Deadline, rules = false): Promise<void> {
    const { record } = this;
    const inspect = ["docker", "inspect", "--format", "{{.State.Running}}", record.container as string];
    const check = rules
      ? ["sh", "-c", `test -f ${networkReadyFilePath(record.jobId)} && exec "$@"`, "sh", ...inspect]
      : inspect;
    await this.poll(deadline, check, (out) => out.trim() === "true" || undefined, {
      ended: "the container did not start",
      late: "the container did not start in time",
    });
  }

  /** The port the job's server listens on, read on its node through a job step. */
  async serverPort(deadline: Deadline): Promise<number> {
    const { record } = this;
    const read =
      record.holds === "docker"
        ? ["docker", "port", record.container as string, `${CONTAINER_SERVER_PORT}/tcp`]
        : ["cat", portFilePath(record.jobId)];
    return this.poll(
      deadline,
      read,
      (out) => {
        const port = Number(/(\d+)\s*$/m.exec(out.split("\n")[0] ?? "")?.[1]);
        return Number.isInteger(port) && port > 0 ? port : undefined;
      },
      { ended: "the server exited", late: "the server did not listen in time" },
    );
  }

  /** The end of the job's log, for errors. */
  log(): Promise<string> {
    return this.instance.logs({ tail: 50 });
  }

  /** Runs `command` as a job step until `parse` finds what it waits for. */
  private async poll<T>(
    deadline: Deadline,
    command: readonly string[],
    parse: (out: string) => T | undefined,
    why: { ended: string; late: string },
  ): Promise<T> {
    const { record } = this;
    for (;;) {
      const out = await slurmCommand(
        this.commands.srun,
        [`--jobid=${record.jobId}`, "--overlap", "--quiet", ...command],
        { timeoutMs: 30_000 },
      ).catch(() => "");
      const found = parse(out);
      if (found !== undefined) return found;
      const state = await jobState(this.commands, record.jobId);
      if (state?.state !== "RUNNING") {
        throw new InstanceStartError(
          record.name,
          `${why.ended}: its Slurm job ${describe(state)}`,
          await this.log(),
        );
      }
      if (deadline.fired) throw this.timeout(deadline, why.late);
      await deadline.sleep(50).catch(() => undefined);
    }
  }

  private timeout(deadline: Deadline, why: string): Error {
    const cause = deadline.error();
    if (cause instanceof AbortedError) return cause;
    return new InstanceStartError(this.record.name, why, undefined, { cause });
  }
}
