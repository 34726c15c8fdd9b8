import { hostname } from "node:os";
import type { InstanceKind, InstanceSpec } from "./instance-spec.js";
import { instanceKind } from "./instance-spec.js";

/** Label keys affinetes puts on everything it creates, so it never touches anything else. */
export const LABELS = {
  managed: "affinetes.managed",
  envName: "affinetes.env.name",
  envType: "affinetes.env.type",
  ownerHost: "affinetes.owner.host",
  ownerPid: "affinetes.owner.pid",
  keep: "affinetes.keep",
  /** The environment an instance serves: its replicas share this name. */
  pool: "affinetes.pool",
  /** "false" on shell sandboxes and tasks, which run no method server. */
  serve: "affinetes.serve",
  /** The instance's kind: `serve`, `sandbox` or `task`. */
  kind: "affinetes.kind",
} as const;

/** Labels naming this process as the owner, for garbage collection of dead clients. */
export function ownerLabels(): Record<string, string> {
  return { [LABELS.ownerHost]: hostname(), [LABELS.ownerPid]: String(process.pid) };
}

/**
 * Whether the client that created a resource has died. Only decided for owners on this
 * host; a resource of another host's client is never judged dead from here.
 */
export function ownerIsDead(labels: Readonly<Record<string, string>>): boolean {
  if (labels[LABELS.keep] === "true") return false;
  if (labels[LABELS.ownerHost] !== hostname()) return false;
  const pid = Number(labels[LABELS.ownerPid]);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  return !processIsAlive(pid);
}

/** Whether a process with this pid exists (signal 0 probes without signalling). */
export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** An instance's kind as its labels record it (those made before the kind label: by `serve`). */
export function kindOf(labels: Readonly<Record<string, string>> | undefined): InstanceKind {
  const kind = labels?.[LABELS.kind];
  if (kind === "serve" || kind === "sandbox" || kind === "task") return kind;
  return labels?.[LABELS.serve] === "false" ? "sandbox" : "serve";
}

/** The labels every instance carries: managed, its environment, kind, owner. */
export function instanceLabels(
  spec: Pick<InstanceSpec, "labels" | "envName" | "keep" | "serve" | "task">,
): Record<string, string> {
  const kind = instanceKind(spec);
  return {
    ...spec.labels,
    [LABELS.managed]: "true",
    [LABELS.envName]: spec.envName,
    [LABELS.keep]: String(spec.keep ?? false),
    [LABELS.serve]: String(kind === "serve"),
    [LABELS.kind]: kind,
    ...ownerLabels(),
  };
}
