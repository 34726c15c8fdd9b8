import { InstancePool } from "../pool/instance-pool.js";
import { createLoadBalancer } from "../pool/load-balancer.js";
import type { LoadBalanceStrategy } from "../pool/load-balancer.js";
import type { ServingInstance } from "../runtime/instance.js";
import type { RemoteMethods } from "./environment.js";
import { Environment } from "./environment.js";
import { registerEnvironment, unregisterEnvironment } from "./registry.js";
import { remoteProxy } from "./remote-proxy.js";

/** What `loadEnv` and `connectEnv` return: the environment, with its remote methods as properties. */
export type EnvironmentHandle<M extends object = RemoteMethods> = Environment & M;

export const DEFAULT_CALL_TIMEOUT_MS = 300_000;

/** Wraps running instances into a registered environment behind the method proxy. */
export function openEnvironment<M extends object>(
  name: string,
  instances: readonly ServingInstance[],
  options: {
    cleanup: boolean;
    loadBalance?: LoadBalanceStrategy | undefined;
    callTimeoutMs?: number | undefined;
  },
): EnvironmentHandle<M> {
  const env = new Environment({
    name,
    pool: new InstancePool(instances, createLoadBalancer(options.loadBalance ?? "random")),
    cleanup: options.cleanup,
    defaultCallTimeoutMs: options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
    onClose: unregisterEnvironment,
  });
  registerEnvironment(env);
  return remoteProxy(env) as EnvironmentHandle<M>;
}
