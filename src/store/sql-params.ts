/**
 * Parameters of a statement built piece by piece: `add` returns the placeholder of a
 * value (`$1`, `$2`, ...), so dynamic SQL never splices a value into its text.
 */
export class SqlParams {
  readonly values: unknown[];

  constructor(...initial: unknown[]) {
    this.values = initial;
  }

  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}
