import { ValidationError } from "../errors.js";

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** Instance names follow Docker's container-name rules, so one name works on every runtime. */
export function validateInstanceName(name: string, option = "containerName"): void {
  if (!NAME.test(name)) {
    throw new ValidationError(
      option,
      `${JSON.stringify(name)} is not a valid name: use letters, digits, "_", "." and "-", starting with a letter or digit (at most 128 characters)`,
    );
  }
}

/** A name usable for containers, images and state folders, made of any text. */
export function sanitizeName(raw: string): string {
  const name = raw
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, "-")
    .replace(/^[^a-z0-9]+/, "");
  return name || "env";
}
