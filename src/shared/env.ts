/**
 * The environment switches that turn one optimisation off for a comparison (a bench's A/B run,
 * a test's negative control): on unless the variable is exactly '0' (unset, empty or any other
 * value: on). Each reader (`xxxFromEnv`) says what its switch turns off. src/protocol reads its
 * three (LADDER_SUBKEY_IN_CODEC, LADDER_SALT_IN_PLACE, LADDER_POOL_WORDS) by the same rule inline:
 * its lint zone imports nothing (not even shared), and an environment reader has no place among
 * its pure codecs for the other zones to import it from.
 */
export function envSwitch(name: `LADDER_${string}`, env: NodeJS.ProcessEnv = process.env): boolean {
  return env[name] !== '0';
}
