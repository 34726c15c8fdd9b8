import { HttpClient } from "../../transport/http-client.js";
import type { ReadinessStrategy } from "./readiness-strategy.js";
import { pollReadiness } from "./poll-readiness.js";

/**
 * Ready once `GET /health` answers, asked with the instance's token: a function-based
 * server must answer 200; an HTTP-based app is up once it answers at all (it may have no
 * /health route). Fails fast when the instance exits.
 */
export const httpHealth: ReadinessStrategy = {
  description: "/health answering",
  async waitUntilReady(target) {
    const { instance } = target;
    const http = readinessClient(instance.endpoint(), instance.authToken);
    try {
      await pollReadiness(target, async (signal) => {
        const answer = await http.request({ method: "GET", path: "/health", signal });
        if (answer.status === 200 || instance.envType === "http_based") return undefined;
        return `/health answered ${answer.status}`;
      });
    } finally {
      await http.close();
    }
  },
};

/**
 * The client readiness probes use (`authToken`: the instance's, so a probe also proves
 * the owner's connection to the server's connection cap). Its connect timeout is short because a container
 * between restarts has no address: a connect there hangs instead of being refused, and
 * undici does not cut a pending connect when the request's signal fires.
 */
export function readinessClient(endpoint: string, authToken?: string): HttpClient {
  return new HttpClient(endpoint, { connections: 1, connectTimeoutMs: 500, authToken });
}
