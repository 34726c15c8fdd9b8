import type { Principal } from "../auth/principals.js";
import { PermissionDeniedError } from "../errors.js";

/**
 * The container type that is a shell on the service's host (or a Slurm node), unconfined:
 * whoever starts one can read the service's state. Off for every non-admin key unless
 * the operator lists it in the key's `allow.container_types`.
 */
export const HOST_SHELL = "local";

/**
 * Whether `principal` may start instances of `containerType`: the key's
 * `allow.container_types` when the operator gave it; else every type for the admin and
 * every type but `local` for anyone else.
 */
export function mayUseContainerType(principal: Principal, containerType: string): boolean {
  const allowed = principal.allow?.containerTypes;
  if (allowed) return allowed.includes(containerType);
  return principal.admin || containerType !== HOST_SHELL;
}

/** Whether `principal` may name the predefined environment `name`: the key's `allow.environments`, else all. */
export function mayUseEnvironment(principal: Principal, name: string): boolean {
  return principal.allow?.environments?.includes(name) ?? true;
}

/** Refuses a start of `containerType` that `principal` may not make (403, saying how the operator allows it). */
export function checkContainerType(principal: Principal, containerType: string): void {
  if (mayUseContainerType(principal, containerType)) return;
  const how =
    containerType === HOST_SHELL
      ? "local is a shell on the service's host: the operator enables it per key"
      : "the operator allows container types per key";
  throw new PermissionDeniedError(
    `${principal.name} may not start container_type ${containerType} (${how}, --api-keys allow.container_types)`,
  );
}

/** Whether `principal` sees and acts on a run recorded for `owner` (a principal's name). */
export function mayActOn(principal: Principal, owner: string): boolean {
  return principal.admin || principal.name === owner;
}
