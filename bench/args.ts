/** Command-line options the bench scripts share: `--name value` pairs read from process.argv. */
const argv = process.argv.slice(2);

/** The value after `name`, or `dflt` when the option is absent. */
export function opt(name: string, dflt: string): string {
  const i = argv.indexOf(name);
  if (i < 0) return dflt;
  const v = argv[i + 1];
  if (v === undefined) throw new Error(`${name} needs a value`);
  return v;
}

/** A positive integer option. */
export function posInt(name: string, dflt: number): number {
  const n = Number(opt(name, String(dflt)));
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: expected a positive integer`);
  return n;
}
