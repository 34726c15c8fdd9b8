/**
 * Whether a pyproject.toml describes an installable project (a `[project]` or
 * `[build-system]` table), not only tool settings (`[tool.ruff]`...).
 */
export function declaresProject(pyproject: Buffer | string | undefined): boolean {
  if (pyproject === undefined) return false;
  return /^\s*\[(project|build-system)\]\s*(#.*)?$/m.test(pyproject.toString());
}

/** What activating `<workspace>/.venv` sets (values for sh: evaluated once the shell is in the workspace). */
export const VENV_ACTIVATION: Readonly<Record<string, string>> = {
  VIRTUAL_ENV: '"$PWD"/.venv',
  PATH: '"$PWD"/.venv/bin:"$PATH"',
};
