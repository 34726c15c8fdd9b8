import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fixturePath } from "./paths.js";

/** Starts test/fixtures/hold-env.mjs in its own process and waits until its environment is ready. */
export async function startHoldingClient(
  mode: "docker" | "process",
  target: string,
): Promise<{ child: ChildProcess; instanceId: string }> {
  const child = spawn(process.execPath, [`${fixturePath("")}hold-env.mjs`, mode, target], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  const instanceId = await new Promise<string>((resolve, reject) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /READY (\S+)/.exec(output);
      if (match?.[1]) resolve(match[1]);
    });
    child.once("exit", (code) => reject(new Error(`client exited with ${code} before READY: ${output}`)));
  });
  return { child, instanceId };
}

/** Sends a signal and waits for the client to exit; returns its exit code and signal. */
export async function killAndWait(child: ChildProcess, signal: NodeJS.Signals) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return { code: child.exitCode, signal: child.signalCode }; // exited already
  }
  const exited = once(child, "exit");
  child.kill(signal);
  const [code, sig] = (await exited) as [number | null, NodeJS.Signals | null];
  return { code, signal: sig };
}
