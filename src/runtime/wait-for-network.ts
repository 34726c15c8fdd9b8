import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { AbortedError, InstanceStartError } from "../errors.js";
import type { Deadline } from "../util/deadline.js";
import { NETWORK_FAILED_FILE, NETWORK_READY_FILE } from "./network-holder-script.js";

/**
 * Waits for a sandbox's network holder (`networkHolderScript`) to report its namespace
 * ready, returning the pid holding it. Its failure, its exit and the deadline are start
 * errors naming why.
 */
export async function waitForNetwork(options: {
  instance: string;
  dir: string;
  deadline: Deadline;
  /** False once the holder (its process, its job) has ended. */
  running: () => Promise<boolean>;
  logs: () => Promise<string>;
}): Promise<number> {
  const { instance, dir, deadline } = options;
  for (let round = 0; ; round++) {
    const ready = await readFile(join(dir, NETWORK_READY_FILE), "utf8").catch(() => "");
    const pid = Number(ready.trim());
    if (ready && Number.isInteger(pid) && pid > 1) return pid;
    const failed = await readFile(join(dir, NETWORK_FAILED_FILE), "utf8").catch(() => "");
    if (failed) throw new InstanceStartError(instance, `its network: ${failed.trim()}`, await options.logs());
    // polled less often as time passes: the namespace takes ~50 ms, a Slurm job seconds
    if (round % 10 === 9 && !(await options.running())) {
      throw new InstanceStartError(instance, "its network holder exited during start", await options.logs());
    }
    if (deadline.fired) {
      const cause = deadline.error();
      if (cause instanceof AbortedError) throw cause;
      throw new InstanceStartError(instance, "its network was not ready in time", await options.logs(), {
        cause,
      });
    }
    await deadline.sleep(round < 100 ? 10 : 50).catch(() => undefined);
  }
}
