/**
 * The environment's on/off switches (LADDER_NATIVE=0 and the others README and the benches name)
 * take 0 or 1; anything else stops the command at start with one line naming the variable, as the
 * relay knobs do (relay-tuning-env.test.ts). Before, every other value meant "on" without a word:
 * `LADDER_NATIVE=false` ran the addon while the user believed it off, and a bench's A/B run
 * compared a build with itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { checkSwitchEnv, ENV_SWITCHES } from '../../src/shared/env.js';
import { run } from '../helpers/cli-run.js';
import { filesUnder } from '../helpers/source-files.js';

/** Every switch src/ and native/ read: envSwitch('X'), env.X === '0' | '1', env.X !== '0', the addon's getenv("X") compared with "0". */
function switchesRead(): Set<string> {
  const found = new Set<string>();
  const forms = [
    /envSwitch\('(LADDER_\w+)'/g,
    /env(?:\.|\[')(LADDER_\w+)'?\]?\s*[!=]==\s*'[01]'/g,
    /getenv\("(LADDER_\w+)"\)[^]{0,120}?strcmp\(\w+, "0"\)/g,
  ];
  for (const file of [...filesUnder('src', /(?<!\.test)\.ts$/), ...filesUnder('native', /\.cc$/)]) {
    const text = readFileSync(file, 'utf8');
    for (const re of forms) for (const m of text.matchAll(re)) found.add(m[1]!);
  }
  return found;
}

test('every switch the code reads is in ENV_SWITCHES, which names nothing else', () => {
  const read = switchesRead();
  assert.ok(
    read.has('LADDER_NATIVE') && read.has('LADDER_EAGER_WORKERS') && read.has('LADDER_POLL_PRIORITY'),
  );
  assert.deepEqual(
    [...read].filter((n) => !ENV_SWITCHES.includes(n)),
    [],
    'read but not checked',
  );
  assert.deepEqual(
    ENV_SWITCHES.filter((n) => !read.has(n)),
    [],
    'listed but read nowhere',
  );
});

test('checkSwitchEnv: 0, 1 and empty are taken; other values and a bad end delay are one line', () => {
  checkSwitchEnv({
    LADDER_NATIVE: '0',
    LADDER_EAGER_WORKERS: '1',
    LADDER_NATIVE_RELAY: '',
    LADDER_MUX_END_DELAY_MS: '0.5',
  });
  assert.throws(() => checkSwitchEnv({ LADDER_NATIVE: 'false' }), {
    message: 'LADDER_NATIVE: expected 0 (off) or 1 (on), got "false"',
  });
  assert.throws(() => checkSwitchEnv({ LADDER_EAGER_WORKERS: 'yes' }), /^RangeError: LADDER_EAGER_WORKERS: /);
  for (const v of ['0', 'off', '1', 'on']) checkSwitchEnv({ LADDER_FLEET_NOTIFY: v });
  assert.throws(() => checkSwitchEnv({ LADDER_FLEET_NOTIFY: 'no' }), {
    message: 'LADDER_FLEET_NOTIFY: expected 0 or off, 1 or on, got "no"',
  });
  assert.throws(() => checkSwitchEnv({ LADDER_MUX_END_DELAY_MS: '-5' }), {
    message: 'LADDER_MUX_END_DELAY_MS: expected milliseconds from 0 to 50, got "-5"',
  });
});

for (const [args, env, line] of [
  [
    ['server', '--password', 'switch-env-pw', '--port', '0', '--host', '127.0.0.1'],
    { LADDER_NATIVE: 'false' },
    'ladder: LADDER_NATIVE: expected 0 (off) or 1 (on), got "false"',
  ],
  [
    ['client', '--key', 'ss://YWVzLTI1Ni1nY206cmVsYXktZW52LXB3@127.0.0.1:9/', '--socks', '127.0.0.1:0'],
    { LADDER_NATIVE_RELAY: 'off' },
    'ladder: LADDER_NATIVE_RELAY: expected 0 (off) or 1 (on), got "off"',
  ],
] as const) {
  test(`ladder ${args[0]} with ${Object.keys(env)[0]}=${Object.values(env)[0]}: one line, exit 2, nothing starts`, async () => {
    const r = run([...args], { env });
    const stop = setTimeout(() => r.child.kill(), 15_000); // it started: the check is missing
    const code = await r.exit;
    clearTimeout(stop);
    assert.equal(code, 2, r.stderr());
    assert.equal(r.stderr().trim(), line);
    assert.equal(r.stdout(), '');
  });
}
