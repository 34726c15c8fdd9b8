import { pino } from "pino";

/**
 * The toolkit's logger: JSON lines on stderr, quiet by default (`warn`). Set
 * `AFFINETES_LOG_LEVEL=debug` to see what happens.
 */
export const logger = pino(
  { name: "affinetes", level: process.env.AFFINETES_LOG_LEVEL ?? "warn" },
  pino.destination(2),
);
