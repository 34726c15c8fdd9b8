import Docker from "dockerode";

/** CI must run every Docker test; elsewhere they may skip, saying why. */
export const inCi = process.env.CI === "true" || process.env.CI === "1";

async function probe(): Promise<string | undefined> {
  try {
    await new Docker().ping();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

const problem = await probe();
if (problem && inCi) {
  throw new Error(`CI requires a Docker engine (.ci/run starts one), but none answers: ${problem}`);
}
if (problem) {
  console.warn(`[affinetes tests] Docker tests skipped: no Docker engine answers (${problem})`);
}

/** True when a Docker engine answers; Docker test suites use `describe.skipIf(!hasDocker)`. */
export const hasDocker = problem === undefined;

/** The local base image the tests build from (see .ci/setup-docker.sh). */
export const testBaseImage = process.env.AFFINETES_BASE_IMAGE ?? "affinetes/python:3.11";

/** Base image with FastAPI and uvicorn, for HTTP-based environments. */
export const fastapiBaseImage = "affinetes/python-fastapi:3.11";

/** Containers created by affinetes, optionally only those of one owner pid. */
export async function managedContainers(ownerPid?: number): Promise<Docker.ContainerInfo[]> {
  const label = ["affinetes.managed=true"];
  if (ownerPid !== undefined) label.push(`affinetes.owner.pid=${ownerPid}`);
  return new Docker().listContainers({ all: true, filters: { label } });
}
