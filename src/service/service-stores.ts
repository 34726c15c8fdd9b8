import { join } from "node:path";
import { stateDir } from "../config.js";
import type { ControlStore } from "../control/control-store.js";
import { SqlControlStore } from "../control/store/sql-control-store.js";
import { InfrastructureError, SchemaTooNewError } from "../errors.js";
import type { QueueStore } from "../queue/queue-store.js";
import { SqlQueueStore } from "../queue/store/sql-queue-store.js";
import type { InstanceStore } from "../rollout/instance-store.js";
import { SqlInstanceStore } from "../rollout/store/sql-instance-store.js";
import type { Database } from "../store/database.js";
import { describeLocation } from "../store/database-location.js";
import { openDatabase } from "../store/open-database.js";

/** The stores of every face of one service process, on its one database handle. */
export interface ServiceStores {
  instances: InstanceStore;
  control: ControlStore;
  /** When the service serves the process queue. */
  queue: QueueStore | undefined;
  /** Closes the stores (ending the queue's waits), then the database. */
  close(): Promise<void>;
}

/**
 * Opens the service's database (`--db`: a SQLite file, default `<state dir>/service.db`,
 * or a `postgres://` URL) once, and the stores of the faces on it, each migrating its
 * tables first. A database whose tables a newer release migrated is refused with
 * `SchemaTooNewError`; any other failure is an `InfrastructureError` naming the database.
 */
export async function openServiceStores(
  location: string | undefined,
  options: { queue: boolean },
): Promise<ServiceStores> {
  const where = location ?? join(stateDir(), "service.db");
  let db: Database | undefined;
  try {
    db = await openDatabase(where);
    const instances = await SqlInstanceStore.open(db);
    const control = await SqlControlStore.open(db);
    const queue = options.queue ? await SqlQueueStore.open(db) : undefined;
    const opened = db;
    return {
      instances,
      control,
      queue,
      close: async () => {
        await Promise.all([instances.close(), control.close(), queue?.close()]);
        await opened.close();
      },
    };
  } catch (err) {
    await db?.close();
    if (err instanceof SchemaTooNewError) throw err;
    throw new InfrastructureError(
      `cannot open the service's database ${describeLocation(where)}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}
