import { SlurmRuntime } from "../../src/runtime/slurm/slurm-runtime.js";
import { inCi } from "./docker.js";

async function probe(): Promise<string | undefined> {
  try {
    await new SlurmRuntime().ping();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

const problem = await probe();
if (problem && inCi) {
  throw new Error(`CI requires Slurm (.ci/setup-slurm.sh starts it), but it does not answer: ${problem}`);
}
if (problem) console.warn(`[affinetes tests] Slurm tests skipped: ${problem}`);

/** True when a Slurm controller answers `squeue`; Slurm suites use `describe.skipIf(!hasSlurm)`. */
export const hasSlurm = problem === undefined;
