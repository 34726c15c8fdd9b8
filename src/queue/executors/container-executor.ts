import type { TaskInstance } from "../../runtime/instance.js";
import type { Runtime } from "../../runtime/runtime.js";
import type { ExecutorLoopOptions } from "./function-executor.js";
import { runExecutorLoop } from "./function-executor.js";
import { timerDelay } from "../../util/deadline.js";

/**
 * An executor that runs processes as tasks of a runtime (containers, with Docker): a process's
 * kwargs name the `image` and the shell `command` (and optionally `env`); its output is
 * the command's output, and a non-zero exit fails it with the output's tail. The
 * container is removed afterwards; `maxexectime` bounds it.
 */
export async function runContainerExecutor(
  options: ExecutorLoopOptions & { runtime: Runtime },
): Promise<void> {
  await runExecutorLoop(options, async (process) => {
    const { image, command, env } = process.spec.kwargs as {
      image?: unknown;
      command?: unknown;
      env?: unknown;
    };
    if (typeof image !== "string" || typeof command !== "string")
      throw new Error("a container process needs kwargs image (string) and command (string)");
    const instance = await options.runtime.start({
      envName: "colonies-executor",
      image,
      serve: false,
      task: { command },
      restartPolicy: "no",
      envVars: env && typeof env === "object" ? (env as Record<string, string>) : {},
      labels: { "affinetes.colonies.process": process.processid },
    });
    try {
      const limit = process.spec.maxexectime > 0 ? process.spec.maxexectime * 1000 : undefined;
      const exitCode = await waitAtMost(instance, limit);
      const output = await instance.logs();
      if (exitCode !== 0) throw new Error(`exit code ${exitCode}: ${output.slice(-2000)}`);
      return [output];
    } finally {
      await instance.stop();
    }
  });
}

async function waitAtMost(instance: TaskInstance, ms: number | undefined): Promise<number | string> {
  if (ms === undefined) return instance.wait();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timerDelay(ms));
  try {
    return await instance.wait({ signal: controller.signal });
  } catch {
    return `none: still running after ${ms / 1000} s (maxexectime)`;
  } finally {
    clearTimeout(timer);
  }
}
