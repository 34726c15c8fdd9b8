/** Whether a `--db` location is a PostgreSQL URL (else it is a SQLite file). */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//.test(location);
}

/** A location fit for a message: a PostgreSQL URL without its password. */
export function describeLocation(location: string): string {
  if (!isPostgresUrl(location)) return location;
  try {
    const url = new URL(location);
    if (url.password) url.password = "***";
    return url.href;
  } catch {
    return "(a postgres:// URL that does not parse)";
  }
}
