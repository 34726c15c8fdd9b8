import type { Queryable } from "../../store/database.js";
import type { Process } from "../model.js";
import { timeMs } from "../model.js";

/**
 * How a process is laid out in its table: the whole document, and the fields the queue
 * selects and orders on as columns; in the order `rowOf` gives their values.
 */
const PROCESS_COLUMNS = (
  "processid colonyname state executortype executornames label isassigned waitforparents prioritytime " +
  "starttime endtime waitdeadline execdeadline graphid doc"
).split(" ");

export const INSERT_PROCESS = `INSERT INTO affinetes_q_processes (${PROCESS_COLUMNS.join(", ")})
  VALUES (${PROCESS_COLUMNS.map((_, i) => `$${i + 1}`).join(", ")})`;

// $1 is the process id; the other columns follow in PROCESS_COLUMNS order.
export const UPDATE_PROCESS = `UPDATE affinetes_q_processes SET ${PROCESS_COLUMNS.slice(1)
  .map((column, i) => `${column} = $${i + 2}`)
  .join(", ")} WHERE processid = $1`;

/** Writes processes back, inside the caller's transaction. */
export async function writeProcesses(tx: Queryable, processes: readonly Process[]): Promise<void> {
  for (const process of processes) await tx.run(UPDATE_PROCESS, rowOf(process));
}

/** The row of a process, in PROCESS_COLUMNS order. */
export function rowOf(process: Process): unknown[] {
  return [
    process.processid,
    process.spec.conditions.colonyname,
    process.state,
    process.spec.conditions.executortype,
    JSON.stringify(process.spec.conditions.executornames),
    process.spec.label,
    process.isassigned,
    process.waitforparents,
    process.prioritytime,
    timeMs(process.starttime) ?? null,
    timeMs(process.endtime) ?? null,
    timeMs(process.waitdeadline) ?? null,
    timeMs(process.execdeadline) ?? null,
    process.processgraphid,
    JSON.stringify(process),
  ];
}
