import { CommanderError } from "commander";
import {
  AffinetesError,
  CallTimeoutError,
  InvalidArgumentsError,
  MethodNotFoundError,
  NotFoundError,
  TimeoutError,
  ValidationError,
} from "../errors.js";

/** Exit codes of `afs`, stable for scripts. */
export const EXIT = {
  ok: 0,
  /** Anything that failed: the method raised, the engine refused, a build broke. */
  failure: 1,
  /** Bad flags or arguments: nothing was done. */
  usage: 2,
  /** The environment, method or image does not exist. */
  notFound: 3,
  /** The call or operation ran out of time. */
  timeout: 4,
} as const;

/** The exit code for an error, in one table. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  if (
    error instanceof UsageError ||
    error instanceof ValidationError ||
    error instanceof InvalidArgumentsError
  ) {
    return EXIT.usage;
  }
  if (error instanceof NotFoundError || error instanceof MethodNotFoundError) return EXIT.notFound;
  if (error instanceof CallTimeoutError || error instanceof TimeoutError) return EXIT.timeout;
  return EXIT.failure;
}

/** A command line that cannot be carried out as written. */
export class UsageError extends AffinetesError {
  constructor(message: string) {
    super("USAGE", message);
  }
}
