import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run, waitForStdout } from '../helpers/cli-run.js';

// LADDER_RELAY_READ_KIB / LADDER_RELAY_SHARED_READ_KIB / LADDER_RELAY_ADAPT / LADDER_POLL_TURN_US
// (native/relay_pair.cc's and thread_poll.cc's bulk knobs, read by the addon
// itself, which falls back to its defaults for anything it cannot read): a bad value stops the
// command at start with one line naming the variable and the value (exit 2), for the client and
// the server alike, instead of running with settings nobody asked for.
for (const [env, line] of [
  [{ LADDER_RELAY_READ_KIB: '1M' }, 'LADDER_RELAY_READ_KIB: expected whole KiB from 16 to 1024, got "1M"'],
  [
    { LADDER_RELAY_READ_KIB: '4096' },
    'LADDER_RELAY_READ_KIB: expected whole KiB from 16 to 1024, got "4096"',
  ],
  [{ LADDER_RELAY_ADAPT: 'yes' }, 'LADDER_RELAY_ADAPT: expected 0 or 1, got "yes"'],
  [
    { LADDER_RELAY_SHARED_READ_KIB: '8' },
    'LADDER_RELAY_SHARED_READ_KIB: expected whole KiB from 16 to 1024, got "8"',
  ],
  [{ LADDER_RELAY_HELD_MIB: '0' }, 'LADDER_RELAY_HELD_MIB: expected whole MiB from 1 to 4096, got "0"'],
  [{ LADDER_POLL_TURN_US: '250us' }, 'LADDER_POLL_TURN_US: expected whole µs from 0 to 1000000, got "250us"'],
] as const) {
  for (const args of [
    ['server', '--password', 'relay-env-pw', '--port', '0', '--host', '127.0.0.1'],
    ['client', '--key', 'ss://YWVzLTI1Ni1nY206cmVsYXktZW52LXB3@127.0.0.1:9/', '--socks', '127.0.0.1:0'],
  ]) {
    test(`ladder ${args[0]}: ${Object.keys(env)[0]}=${Object.values(env)[0]} is one clear line, exit 2`, async () => {
      const r = run(args, { env });
      const stop = setTimeout(() => r.child.kill(), 15_000); // it started: the check is missing
      const code = await r.exit;
      clearTimeout(stop);
      assert.equal(code, 2, r.stderr());
      assert.equal(r.stderr().trim(), `ladder: ${line}`);
    });
  }
}

test('good values of the relay knobs are taken (the client starts)', async () => {
  const r = run(
    ['client', '--key', 'ss://YWVzLTI1Ni1nY206cmVsYXktZW52LXB3@127.0.0.1:9/', '--socks', '127.0.0.1:0'],
    {
      env: {
        LADDER_RELAY_READ_KIB: '256',
        LADDER_RELAY_ADAPT: '0',
        LADDER_RELAY_SHARED_READ_KIB: '64',
        LADDER_POLL_TURN_US: '0',
        LADDER_RELAY_HELD_MIB: '16',
      },
    },
  );
  try {
    await waitForStdout(r, /SOCKS5/, 15_000);
  } finally {
    r.child.kill();
  }
});

// Help is not running: `--help` (the program's, a command's, a nested one's) prints with a bad
// value, exit 0; the value is refused only when something runs (above). Before, help stopped with
// the same one-line error.
for (const args of [['--help'], ['server', '--help'], ['keys', 'url', '--help'], ['client', '-h']]) {
  test(`ladder ${args.join(' ')} with LADDER_RELAY_ADAPT=yes prints its help, exit 0`, async () => {
    const r = run(args, { env: { LADDER_RELAY_ADAPT: 'yes', LADDER_RELAY_READ_KIB: '1M' } });
    assert.equal(await r.exit, 0, r.stderr());
    assert.match(r.stdout(), /^Usage: ladder /);
    assert.equal(r.stderr(), '');
  });
}
