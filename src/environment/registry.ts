import { logger } from "../logger.js";
import { flushReaps } from "../runtime/docker/reap-containers.js";
import type { Environment } from "./environment.js";

/**
 * The environments this process has loaded and not cleaned up. They are cleaned up when
 * the process receives SIGINT or SIGTERM, and synchronously when it exits.
 */
const active = new Set<Environment>();
let hooksInstalled = false;

/** Adds an environment to the registry (done by `loadEnv`). */
export function registerEnvironment(env: Environment): void {
  active.add(env);
  installExitHooks();
}

/** Removes an environment from the registry (done when it is cleaned up). */
export function unregisterEnvironment(env: Environment): void {
  active.delete(env);
  if (active.size === 0) removeExitHooks();
}

/** Names of the environments loaded in this process and not cleaned up. */
export function listActiveEnvironments(): string[] {
  return [...active].map((env) => env.name);
}

/** The active environment of that name, if any. */
export function getEnvironment(name: string): Environment | undefined {
  return [...active].find((env) => env.name === name);
}

/** Cleans up every active environment (each as its own `cleanup` option says). */
export async function cleanupAllEnvironments(): Promise<void> {
  const results = await Promise.allSettled([...active].map((env) => env.cleanup()));
  for (const result of results) {
    if (result.status === "rejected") logger.warn({ err: String(result.reason) }, "cleanup failed");
  }
}

function onExit(): void {
  for (const env of active) {
    if (env.stopsOnExit) env.stopSync();
  }
  flushReaps();
}

async function onSignal(signal: NodeJS.Signals): Promise<void> {
  await cleanupAllEnvironments();
  removeExitHooks();
  // When the application has its own handler, it decides what the signal means; else
  // re-raise it so the process ends as it would have without us.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

const signalHandlers = {
  SIGINT: () => void onSignal("SIGINT"),
  SIGTERM: () => void onSignal("SIGTERM"),
} as const;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", onExit);
  process.on("SIGINT", signalHandlers.SIGINT);
  process.on("SIGTERM", signalHandlers.SIGTERM);
}

function removeExitHooks(): void {
  if (!hooksInstalled) return;
  hooksInstalled = false;
  process.off("exit", onExit);
  process.off("SIGINT", signalHandlers.SIGINT);
  process.off("SIGTERM", signalHandlers.SIGTERM);
}
