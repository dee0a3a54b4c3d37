/**
 * The environment switches that turn one optimisation off for a comparison (a bench's A/B run,
 * a test's negative control): on unless the variable is exactly '0' (unset, empty or any other
 * value: on). Each reader (`xxxFromEnv`) says what its switch turns off.
 */
export function envSwitch(name: `LADDER_${string}`, env: NodeJS.ProcessEnv = process.env): boolean {
  return env[name] !== '0';
}
