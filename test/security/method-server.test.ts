import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ProcessRuntime, cleanupAllEnvironments, connectEnv, loadEnv } from "../../src/index.js";
import { examplePath } from "../helpers/paths.js";
import { until } from "../helpers/until.js";
import { isClosedByServer, openSockets, rawExchange, startServer } from "../server/server-process.js";
import type { TokenEnv } from "./method-server-suite.js";
import { attackerRequest, methodServerAttacks, tokenEnvPath } from "./method-server-suite.js";

/** A Python with FastAPI and uvicorn, for an HTTP-based environment in process mode. */
const fastapiPython = ["/usr/bin/python3", "python3"].find((python) => {
  try {
    execFileSync(python, ["-c", "import fastapi, uvicorn"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
});

/**
 * Issue 14, item 4: the method server answers only its owner and holds under slow
 * clients. Process runtime here (the server on 127.0.0.1, the attacker another local
 * client); docker in method-server-docker.test.ts, an SSH host in method-server-ssh.test.ts.
 */
describe("method server attacks: process runtime", () => {
  afterAll(async () => {
    await cleanupAllEnvironments();
  });

  methodServerAttacks(
    async (envVars) =>
      (await loadEnv({
        envPath: tokenEnvPath,
        mode: "process",
        ...(envVars ? { envVars } : {}),
      })) as TokenEnv,
  );

  it("keeps the token in the instance's record, readable by its owner only, never on a command line", async () => {
    await using env = (await loadEnv({ envPath: tokenEnvPath, mode: "process" })) as TokenEnv;
    const token = env.instances[0]?.authToken as string;
    const record = join(process.env.AFFINETES_STATE_DIR as string, "process", env.name, "state.json");
    expect(statSync(record).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(record, "utf8"))).toMatchObject({ authToken: token });
    const pid = Number(env.instanceId.replace("process-", ""));
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).not.toContain(token);
  });
});

/** The Python affinetes' images and clients keep working with ours: no token, no check. */
describe("method server compatibility without a token", () => {
  it("a server started without a token answers unauthenticated calls, as the Python affinetes server does", async () => {
    await using server = await startServer({}, { folder: tokenEnvPath });
    const answer = await attackerRequest(server.base, "POST", "/call", {}, '{"method":"add","args":[1,2]}');
    expect(answer).toMatchObject({ status: 200, body: { status: "success", result: 3 } });
    expect(server.output()).toContain("no token: open to any caller");
  });

  it("our client works against an instance started without a token (connectEnv, as to an image that does not know tokens)", async () => {
    const runtime = new ProcessRuntime();
    await using instance = await runtime.start({
      envName: "token-env",
      envPath: tokenEnvPath,
      name: "no-token-env",
    });
    expect(instance.authToken).toBeUndefined();
    await using env = (await connectEnv("no-token-env", { mode: "process" })) as TokenEnv;
    expect(await env.add({ a: 1, b: 2 })).toBe(3);
    expect(
      (await attackerRequest(instance.endpoint(), "POST", "/call", {}, '{"method":"add","args":[2,2]}'))
        .status,
    ).toBe(200);
  });

  it.skipIf(!fastapiPython)(
    "our client works against a server that ignores the token (an HTTP-based environment's own app)",
    async () => {
      await using env = await loadEnv({
        envPath: examplePath("fastapi-env"),
        mode: "process",
        python: fastapiPython,
      });
      expect(env.envType).toBe("http_based");
      expect(env.instances[0]?.authToken).toBeDefined(); // sent, and the app is free to check it
      expect(await env.echo({ text: "hi", times: 2 })).toEqual({ text: "hi hi" });
    },
  );

  it("without a token, half-sent bodies are closed by the body's read timeout (408)", async () => {
    await using server = await startServer({ AFFINETES_HEAD_TIMEOUT_SECONDS: "1" }, { folder: tokenEnvPath });
    const sockets = await openSockets(
      server.port,
      100,
      'POST /call HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"method":',
    );
    try {
      expect(await until(() => sockets.every(isClosedByServer), 4_000)).toBe(true);
      const late = await rawExchange(
        server.port,
        'POST /call HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{"method":',
        { waitMs: 4_000 },
      );
      expect(late).toMatchObject({ status: 408, body: { detail: expect.any(String) } });
      expect((await attackerRequest(server.base, "GET", "/health")).status).toBe(200);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });
});
