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

/**
 * The native relay's bulk knobs (native/relay_pair.cc reads them itself, once per process):
 * LADDER_RELAY_READ_KIB, the most one read takes (whole KiB, 16..1024), and LADDER_RELAY_ADAPT
 * (0 or 1). The addon falls back to its defaults for anything else; this says so before anything
 * starts, in one line, instead of running silently with settings the user did not ask for.
 */
export function checkRelayTuningEnv(env: NodeJS.ProcessEnv = process.env): void {
  const kib = env.LADDER_RELAY_READ_KIB;
  if (kib !== undefined && kib !== '' && !(/^\d{1,4}$/.test(kib) && +kib >= 16 && +kib <= 1024))
    throw new RangeError(`LADDER_RELAY_READ_KIB: expected whole KiB from 16 to 1024, got "${kib}"`);
  const adapt = env.LADDER_RELAY_ADAPT;
  if (adapt !== undefined && adapt !== '' && adapt !== '0' && adapt !== '1')
    throw new RangeError(`LADDER_RELAY_ADAPT: expected 0 or 1, got "${adapt}"`);
}
