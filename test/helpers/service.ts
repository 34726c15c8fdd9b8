import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { afsBin } from "./afs.js";

export interface Service {
  child: ChildProcess;
  url: string;
  /** What it printed on stdout. */
  output: () => string;
}

/** A fresh SQLite file for a service's state. */
export function serviceDb(): string {
  return join(mkdtempSync(join(tmpdir(), "affinetes-svc-")), "service.db");
}

/**
 * Starts `afs serve` as its own process, as users run it, on a free port; `--db` is a
 * fresh file unless the arguments give one.
 */
export async function serve(...args: string[]): Promise<Service> {
  const db = args.includes("--db") ? [] : ["--db", serviceDb()];
  const child = spawn(process.execPath, [afsBin, "serve", "--port", "0", ...db, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.on("data", () => {
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match?.[1]) resolve(match[1]);
    });
    child.once("exit", (code) => reject(new Error(`afs serve exited with ${code}: ${out}`)));
  });
  return { child, url, output: () => out };
}

/** One request to the service: GET without a body, POST with one. */
export async function call(
  service: Pick<Service, "url">,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await request(`${service.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json", ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
}

/** The output of a successful command, failing loudly otherwise. */
export async function run(service: Pick<Service, "url">, runId: string, cmd: string): Promise<string> {
  const res = await call(service, "/execute_command", { run_id: runId, cmd });
  if (res.status !== 200) throw new Error(`${cmd}: HTTP ${res.status} ${JSON.stringify(res.json)}`);
  return (res.json.result as { output: string }).output;
}
