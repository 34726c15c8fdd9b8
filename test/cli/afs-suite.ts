import { afterAll, describe, expect, it } from "vitest";
import { afs } from "../helpers/afs.js";

export interface AfsTarget {
  mode: "docker" | "process";
  /** `afs run` arguments that start the actor example under `name`. */
  runArgs: (name: string) => string[];
}

/** The terminal flow, each command in its own process: run -> call -> logs -> stop. */
export function afsSuite(target: AfsTarget): void {
  describe(`afs on the ${target.mode} runtime`, () => {
    const name = `afs-${target.mode}-${process.pid}`;

    afterAll(async () => {
      await afs(["stop", name]);
    });

    it("run starts an environment that outlives the command", async () => {
      const run = await afs([...target.runArgs(name), "--env", "API_KEY=from-cli"]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain(`✓ Environment started: ${name} (${target.mode}`);
      expect(run.stdout).toMatch(/evaluate\(task_type: str = 'sat'/);
      expect(run.stdout).toContain(`afs call ${name} `);
    });

    it("call reaches it from another process and prints the result as JSON", async () => {
      const whoami = await afs(["call", name, "whoami"]);
      expect(whoami.code, whoami.stderr).toBe(0);
      expect(JSON.parse(whoami.stdout)).toMatchObject({ api_key: "from-cli" });
      const evaluate = await afs([
        "call",
        name,
        "evaluate",
        "--arg",
        "task_type=sat",
        "--json",
        '{"delay": 0}',
      ]);
      expect(JSON.parse(evaluate.stdout)).toEqual({ task_type: "sat", score: 1, api_key_set: true });
      const numbers = await afs(["call", name, "work", "--arg", "seconds=0.01"]);
      expect(JSON.parse(numbers.stdout)).toBe(0.01);
    });

    it("ls and methods show it; --json output parses", async () => {
      const ls = await afs(["ls"]);
      expect(ls.stdout).toMatch(
        new RegExp(`${name}\\s+${name}(-\\d+)?\\s+${target.mode}\\s+localhost\\s+\\S+\\s+running`),
      );
      const lsJson = JSON.parse((await afs(["ls", "--json"])).stdout) as Array<{
        pool: string;
        state: string;
      }>;
      expect(lsJson.find((i) => i.pool === name)?.state).toBe("running");
      const methods = await afs(["--json", "methods", name]);
      expect((JSON.parse(methods.stdout) as Array<{ name: string }>).map((m) => m.name).sort()).toEqual([
        "evaluate",
        "fail",
        "whoami",
        "work",
      ]);
    });

    it("logs shows the server's output", async () => {
      const logs = await afs(["logs", name, "--tail", "5"]);
      expect(logs.code).toBe(0);
      expect(logs.stdout).toContain("affinetes: listening on");
    });

    it("fails with distinct exit codes and one-line messages", async () => {
      const unknownEnv = await afs(["call", "no-such-env", "whoami"]);
      expect(unknownEnv.code).toBe(3);
      expect(unknownEnv.stderr).toMatch(
        new RegExp(`Environment not found: no-such-env\\. Running: .*${name}`),
      );
      const unknownMethod = await afs(["call", name, "nope"]);
      expect(unknownMethod.code).toBe(3);
      expect(unknownMethod.stderr).toMatch(/Method not found: nope\. Available methods: .*whoami/);
      const badArg = await afs(["call", name, "whoami", "--arg", "novalue"]);
      expect(badArg.code).toBe(2);
      expect(badArg.stderr).toMatch(/expected --arg key=value/);
      const raised = await afs(["call", name, "fail", "--arg", "message=bad"]);
      expect(raised.code).toBe(1);
      expect(raised.stderr).toMatch(/RuntimeError: bad/);
      expect(raised.stderr).not.toMatch(/\n\s+at /); // no stack trace without --debug
      const timeout = await afs(["call", name, "evaluate", "--arg", "delay=5", "--timeout", "0.2"]);
      expect(timeout.code).toBe(4);
      const badFlag = await afs(["call", name, "whoami", "--no-such-flag"]);
      expect(badFlag.code).toBe(2);
      const debug = await afs(["--debug", "call", name, "nope"]);
      expect(debug.stderr).toMatch(/\n\s+at /);
    });

    it("stop removes it; afterwards it is not found", async () => {
      const stop = await afs(["stop", name]);
      expect(stop.code, stop.stderr).toBe(0);
      expect(stop.stdout).toContain(`✓ Stopped ${name}`);
      expect((await afs(["call", name, "whoami"])).code).toBe(3);
      expect((await afs(["stop", name])).code).toBe(3);
    });
  });
}
