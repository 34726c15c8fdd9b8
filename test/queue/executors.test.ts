import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Colonies,
  DockerRuntime,
  ProcessStates,
  funcSpec,
  newIdentity,
  runContainerExecutor,
  runFunctionExecutor,
} from "../../src/index.js";
import type { Identity, Process } from "../../src/index.js";
import { killAndWait } from "../helpers/client-process.js";
import { hasDocker, testBaseImage } from "../helpers/docker.js";
import type { Service } from "../helpers/service.js";
import { serve } from "../helpers/service.js";
import { until } from "../helpers/until.js";

const server = newIdentity();
const colony = newIdentity();
const colonyname = "shipped";
let service: Service;
let colonies: Colonies;

async function executor(name: string, type: string): Promise<Identity> {
  const identity = newIdentity();
  await colonies.addExecutor(
    { executorid: identity.id, executortype: type, executorname: name, colonyname },
    colony.privateKey,
  );
  await colonies.approveExecutor(colonyname, name, colony.privateKey);
  return identity;
}

async function finished(processid: string): Promise<Process> {
  const done = (p: Process) => p.state === ProcessStates.SUCCESS || p.state === ProcessStates.FAILED;
  expect(await until(async () => done(await colonies.getProcess(processid, colony.privateKey)), 30_000)).toBe(
    true,
  );
  return colonies.getProcess(processid, colony.privateKey);
}

beforeAll(async () => {
  service = await serve("--colonies-server-id", server.id);
  colonies = new Colonies(service.url);
  await colonies.addColony({ colonyid: colony.id, name: colonyname }, server.privateKey);
});

afterAll(async () => {
  await colonies?.disconnect();
  if (service) await killAndWait(service.child, "SIGTERM");
});

describe("the executors we ship", () => {
  it("a function executor runs TypeScript functions registered in code, and stops on abort", async () => {
    const identity = await executor("ts-1", "ts");
    const stop = new AbortController();
    const loop = runFunctionExecutor({
      colonies,
      colonyname,
      identity,
      concurrency: 2,
      signal: stop.signal,
      functions: {
        add: ([a, b]) => (a as number) + (b as number),
        greet: (_args, kwargs) => [`hello ${String(kwargs.name)}`, "!"],
        boom: () => {
          throw new Error("exploded on purpose");
        },
      },
    });
    const submit = (funcname: string, args: unknown[] = [], kwargs: Record<string, unknown> = {}) =>
      colonies.submitFuncSpec(
        funcSpec({ funcname, colonyname, executortype: "ts", args, kwargs }),
        colony.privateKey,
      );
    const [add, greet, boom, missing] = await Promise.all([
      submit("add", [2, 3]),
      submit("greet", [], { name: "you" }),
      submit("boom"),
      submit("nope"),
    ]);
    expect((await finished(add!.processid)).out).toEqual([5]);
    expect((await finished(greet!.processid)).out).toEqual(["hello you", "!"]);
    expect(await finished(boom!.processid)).toMatchObject({
      state: ProcessStates.FAILED,
      errors: ["exploded on purpose"],
    });
    expect((await finished(missing!.processid)).errors[0]).toMatch(/no function nope/);
    stop.abort();
    await loop; // the loop ends: nothing keeps running
  });

  it.skipIf(!hasDocker)(
    "a container executor runs a process's command in a container of its image",
    async () => {
      const identity = await executor("ctr-1", "container");
      const runtime = new DockerRuntime();
      const stop = new AbortController();
      const loop = runContainerExecutor({ colonies, colonyname, identity, runtime, signal: stop.signal });
      const submit = (command: string) =>
        colonies.submitFuncSpec(
          funcSpec({
            funcname: "execute",
            colonyname,
            executortype: "container",
            kwargs: { image: testBaseImage, command, env: { WHO: "the container" } },
          }),
          colony.privateKey,
        );
      const ok = await submit("echo hello from $WHO; head -1 /etc/os-release");
      const bad = await submit("echo about to fail; exit 3");
      expect((await finished(ok.processid)).out[0]).toMatch(/^hello from the container\nPRETTY_NAME="Debian/);
      const failed = await finished(bad.processid);
      expect(failed.state).toBe(ProcessStates.FAILED);
      expect(failed.errors[0]).toMatch(/exit code 3: about to fail/);
      stop.abort();
      await loop;
      await runtime.close();
    },
  );
});
