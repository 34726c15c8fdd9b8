import type { Colonies, Identity, Process } from "../client/colonies.js";

/** A function an executor runs: positional args and kwargs in, output values out. */
export type ExecutorFunction = (
  args: unknown[],
  kwargs: Record<string, unknown>,
  process: Process,
) => unknown[] | unknown | Promise<unknown[] | unknown>;

export interface ExecutorLoopOptions {
  colonies: Colonies;
  colonyname: string;
  /** The executor's identity (added and approved in the colony). */
  identity: Identity;
  /** Long-poll wait per assign, in seconds (default 10). */
  pollSeconds?: number;
  /** Processes handled at once (default 1). */
  concurrency?: number;
  /** Stops the loop: processes running finish first. */
  signal?: AbortSignal;
}

/**
 * An executor for TypeScript functions registered in code: it takes the colony's
 * processes of its type, calls the function named by `funcname`, and closes each with
 * what the function returned (an array is the output list; anything else its one
 * element), or as failed with the error's message.
 *
 * ```ts
 * const stop = new AbortController();
 * await runFunctionExecutor({ colonies, colonyname: "lab", identity, functions: { add: ([a, b]) => a + b }, signal: stop.signal });
 * ```
 */
export async function runFunctionExecutor(
  options: ExecutorLoopOptions & { functions: Record<string, ExecutorFunction> },
): Promise<void> {
  await runExecutorLoop(options, async (process) => {
    const fn = options.functions[process.spec.funcname];
    if (!fn) throw new Error(`no function ${process.spec.funcname} is registered with this executor`);
    return fn(process.spec.args, process.spec.kwargs, process);
  });
}

/**
 * The loop every executor runs: assign (long poll), work, close; `concurrency` loops at
 * once, until `signal` aborts. A failed assign (the server restarting) is retried after
 * a pause, so an executor outlives its server's restarts.
 */
export async function runExecutorLoop(
  options: ExecutorLoopOptions,
  work: (process: Process) => Promise<unknown>,
): Promise<void> {
  const { colonies, colonyname, identity } = options;
  const loop = async () => {
    while (!options.signal?.aborted) {
      let process: Process | undefined;
      try {
        process = await colonies.assign(colonyname, options.pollSeconds ?? 10, identity.privateKey, {
          ...(options.signal ? { signal: options.signal } : {}),
        });
      } catch {
        await pause(1000, options.signal);
        continue;
      }
      if (!process) continue;
      try {
        const result = await work(process);
        await colonies.close(
          process.processid,
          Array.isArray(result) ? result : [result],
          identity.privateKey,
        );
      } catch (err) {
        await colonies
          .fail(process.processid, [err instanceof Error ? err.message : String(err)], identity.privateKey)
          .catch(() => undefined); // the process may have been failed by its deadline meanwhile
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 1 }, loop));
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
