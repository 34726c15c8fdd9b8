import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { open, readFile } from "node:fs/promises";
import { AbortedError, InstanceStartError } from "../../errors.js";
import { AUTH_TOKEN_VARIABLE } from "../../server/server-files.js";
import { instanceToken } from "../../transport/auth-token.js";
import type { Deadline } from "../../util/deadline.js";
import type { EnvFolder } from "../env-folder.js";
import type { InstanceSpec } from "../instance-spec.js";
import type { ProcessInstance } from "./process-instance.js";
import { logFile } from "./process-instance.js";

/**
 * Starts `file args` in its own process group (so stop() reaches whatever it spawns),
 * its output appended to the instance's log. A spawn that fails (no such program) is an
 * `InstanceStartError`; the exit of a started one is the caller's to watch.
 */
export async function spawnLogged(
  name: string,
  file: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<ChildProcess> {
  const log = await open(logFile(name), "a");
  const failure: { reason?: string } = {};
  let child: ChildProcess;
  try {
    child = spawn(file, args, { ...options, stdio: ["ignore", log.fd, log.fd], detached: true });
    // Attached before any await: a failed spawn reports on the next tick.
    child.once("error", (err) => (failure.reason = `cannot run ${file}: ${err.message}`));
  } finally {
    await log.close();
  }
  child.unref();
  if (child.pid === undefined) {
    // Never build an instance without a pid: stopping it would signal process group -(-1).
    await new Promise((resolve) => setImmediate(resolve)); // the spawn error arrives on the next tick
    throw new InstanceStartError(name, failure.reason ?? `cannot run ${file}`);
  }
  return child;
}

/** The method server's environment: the spec's variables, where to listen, its token, its parent. */
export function serverEnv(folder: EnvFolder, spec: InstanceSpec, portFile: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...spec.envVars,
    AFFINETES_ENV_PATH: folder.envFile,
    AFFINETES_ENV_TYPE: folder.envType,
    AFFINETES_HOST: "127.0.0.1",
    AFFINETES_PORT: "0",
    AFFINETES_PORT_FILE: portFile,
  };
  // In the environment, never on the command line: /proc/PID/environ is the owner's only.
  const token = instanceToken(spec);
  if (token) env[AUTH_TOKEN_VARIABLE] = token;
  else delete env[AUTH_TOKEN_VARIABLE]; // not one inherited from this process
  // Tie the server's life to ours unless it must outlive us.
  if (!spec.keep) env.AFFINETES_PARENT_PID = String(process.pid);
  else delete env.AFFINETES_PARENT_PID;
  return env;
}

/** The server writes its port once it listens; until then we also watch for an early exit. */
export async function waitForPortFile(
  portFile: string,
  deadline: Deadline,
  instance: ProcessInstance,
): Promise<number> {
  // A constant short interval: reading a small file costs little, and Python's own
  // start-up (~100 ms) is what we wait for.
  for (let elapsed = 0; ; elapsed += 5) {
    const text = await readFile(portFile, "utf8").catch(() => "");
    const port = Number(text);
    if (text && Number.isInteger(port) && port > 0) return port;
    if (!(await instance.isRunning())) {
      throw new InstanceStartError(
        instance.name,
        "the server process exited during start",
        await instance.logs({ tail: 50 }),
      );
    }
    if (deadline.fired) {
      const cause = deadline.error();
      if (cause instanceof AbortedError) throw cause;
      throw new InstanceStartError(
        instance.name,
        "server did not listen in time",
        await instance.logs({ tail: 50 }),
        { cause },
      );
    }
    await deadline.sleep(elapsed < 2_000 ? 5 : 25).catch(() => undefined);
  }
}
