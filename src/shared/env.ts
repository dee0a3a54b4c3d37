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
 * The native relay's bulk knobs (native/relay_pair.cc and thread_poll.cc read them themselves,
 * once per process): LADDER_RELAY_READ_KIB, the most one read takes (whole KiB, 16..1024),
 * LADDER_RELAY_SHARED_READ_KIB, the most while the thread also serves short exchanges (16..1024),
 * LADDER_RELAY_HELD_MIB, the bytes a thread may hold for slow readers before every read takes
 * 64 KiB (whole MiB, 1..4096), LADDER_RELAY_ADAPT (0 or 1) and LADDER_POLL_TURN_US, how long one loop turn may spend on bulk
 * relays (whole µs, 0..1000000; 0: no limit). The addon falls back to its defaults for anything
 * else; this says so before anything starts, in one line, instead of running silently with
 * settings the user did not ask for. (LADDER_POLL_PRIORITY is a switch: envSwitch's rule.)
 */
export function checkRelayTuningEnv(env: NodeJS.ProcessEnv = process.env): void {
  const whole = (name: string, lo: number, hi: number, unit: string): void => {
    const v = env[name];
    if (v !== undefined && v !== '' && !(/^\d{1,7}$/.test(v) && +v >= lo && +v <= hi))
      throw new RangeError(`${name}: expected whole ${unit} from ${lo} to ${hi}, got "${v}"`);
  };
  whole('LADDER_RELAY_READ_KIB', 16, 1024, 'KiB');
  whole('LADDER_RELAY_SHARED_READ_KIB', 16, 1024, 'KiB');
  whole('LADDER_RELAY_HELD_MIB', 1, 4096, 'MiB');
  whole('LADDER_POLL_TURN_US', 0, 1_000_000, 'µs');
  const adapt = env.LADDER_RELAY_ADAPT;
  if (adapt !== undefined && adapt !== '' && adapt !== '0' && adapt !== '1')
    throw new RangeError(`LADDER_RELAY_ADAPT: expected 0 or 1, got "${adapt}"`);
}

/**
 * Every on/off switch ladder reads from the environment (envSwitch's, the inline ones in
 * src/protocol and src/server, the addon's own getenv): each is 0 or 1 (or empty: the default),
 * nothing else. Before, any other value was read as the default without a word, so
 * `LADDER_NATIVE=false` or `LADDER_NATIVE_RELAY=off` left the addon on while the user believed it
 * off. test/cli/switch-env.test.ts finds every switch read in src/ and native/ and checks it is
 * listed here.
 */
export const ENV_SWITCHES: readonly string[] = [
  'LADDER_ACCEPT_TRIAL',
  'LADDER_ACCEPT_WATCH_MOVE',
  'LADDER_CLIENT_LEAN',
  'LADDER_CLIENT_NATIVE_TUNNEL',
  'LADDER_CLOSE_SKIPS_DEL',
  'LADDER_CONNECT_AT_ONCE',
  'LADDER_DEVICE_LIMITS',
  'LADDER_EAGER_WORKERS',
  'LADDER_FRONT_HANDOFF',
  'LADDER_FRONT_LEAN',
  'LADDER_HEAP_TUNE',
  'LADDER_IDLE_RELEASE',
  'LADDER_LAST_FIN_BY_CLOSE',
  'LADDER_LAZY_IDLE',
  'LADDER_LEAN_END',
  'LADDER_LEAN_PATH',
  'LADDER_MUX_BULK_APART',
  'LADDER_NAME_DIAL',
  'LADDER_NATIVE',
  'LADDER_NATIVE_ACCEPT',
  'LADDER_NATIVE_APP',
  'LADDER_NATIVE_CHECKS',
  'LADDER_NATIVE_DEST',
  'LADDER_NATIVE_ENCODER',
  'LADDER_NATIVE_HANDSHAKE',
  'LADDER_NATIVE_RELAY',
  'LADDER_NATIVE_SALT',
  'LADDER_NATIVE_SOCKS',
  'LADDER_NATIVE_TRIAL',
  'LADDER_NATIVE_TUNNEL',
  'LADDER_PACKED_EVENTS',
  'LADDER_PENDING_CAPS',
  'LADDER_POLL_PRIORITY',
  'LADDER_POOL_WORDS',
  'LADDER_RAW_HEADER',
  'LADDER_ROUTE_SALT',
  'LADDER_SALT_IN_PLACE',
  'LADDER_SCHED_BATCH',
  'LADDER_SKIP_IDLE_POLL',
  'LADDER_SUBKEY_IN_CODEC',
  'LADDER_TIMERS_ON_DEMAND',
  'LADDER_TUNNEL_AT_ONCE',
  'LADDER_WATCH_TIMER',
  'LADDER_YOUNG',
];

/**
 * Every other LADDER_* variable something of ladder's reads: the command's settings (values, not
 * switches), bin/ladder.js's, the native build script's and the test harness's (set for a test run,
 * so inherited by the commands it starts). With ENV_SWITCHES, the names an environment may hold
 * without a warning (src/cli/env-names.ts); test/cli/env-names.test.ts finds every name src/,
 * native/, bin/ and scripts/ mention and every one test/ and bench/ read, and checks it is known.
 */
export const ENV_SETTINGS: readonly string[] = [
  // commands
  'LADDER_API',
  'LADDER_AUTH',
  'LADDER_DEVICE_SILENT_MS', // tests: the silence that frees an address (docs/limits.md)
  'LADDER_DNS_CACHE_MS',
  'LADDER_FLEET_NOTIFY',
  'LADDER_KEY',
  'LADDER_LOG_LEVEL',
  'LADDER_MUX_END_DELAY_MS',
  'LADDER_PASSWORD',
  'LADDER_POLL_TURN_US',
  'LADDER_RELAY_ADAPT',
  'LADDER_RELAY_HELD_MIB',
  'LADDER_RELAY_READ_KIB',
  'LADDER_RELAY_SHARED_READ_KIB',
  'LADDER_REPORT_KEYS', // no longer read: the fleet node says so itself
  'LADDER_REPORT_WINDOW_S', // likewise
  'LADDER_STATE_DIR',
  'LADDER_STORE',
  'LADDER_STORE_POOL',
  // bin/ladder.js
  'LADDER_DEBUG',
  'LADDER_DIST',
  // scripts/build-native.mjs
  'LADDER_NATIVE_VERBOSE',
  'LADDER_SKIP_NATIVE',
  // the test harness
  'LADDER_RECORD_MODULES',
  'LADDER_SCREENSHOTS',
  'LADDER_SOAK_STRICT',
  'LADDER_TEST_ADDON',
];

/** One line (a RangeError) for the first switch set to anything but 0, 1 or nothing. */
export function checkSwitchEnv(env: NodeJS.ProcessEnv = process.env): void {
  for (const name of ENV_SWITCHES) {
    const v = env[name];
    if (v !== undefined && v !== '' && v !== '0' && v !== '1')
      throw new RangeError(`${name}: expected 0 (off) or 1 (on), got "${v}"`);
  }
  // The fleet's LISTEN switch took only "off" before the others were checked: both spellings.
  const notify = env.LADDER_FLEET_NOTIFY;
  if (notify !== undefined && !['', '0', '1', 'off', 'on'].includes(notify))
    throw new RangeError(`LADDER_FLEET_NOTIFY: expected 0 or off, 1 or on, got "${notify}"`);
  const delay = env.LADDER_MUX_END_DELAY_MS;
  if (delay !== undefined && delay !== '' && !(/^\d+(\.\d+)?$/.test(delay) && +delay <= 50))
    throw new RangeError(`LADDER_MUX_END_DELAY_MS: expected milliseconds from 0 to 50, got "${delay}"`);
}
