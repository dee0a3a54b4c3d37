/**
 * A LADDER_* variable nothing reads (a misspelling: LADDER_NATVE_RELAY=0) is named at start, one
 * line each, with the name it is near, never its value. The first test keeps the known list whole:
 * every name src/, native/, bin/ and scripts/ mention, and every one test/ and bench/ read from
 * the environment, must be in it, so a new variable cannot be forgotten (and then warned about).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ENV_SETTINGS, ENV_SWITCHES } from '../../src/shared/env.js';
import { KNOWN_ENV_NAMES, unknownEnvLines } from '../../src/cli/env-names.js';
import { run } from '../helpers/cli-run.js';
import { filesUnder } from '../helpers/source-files.js';

/** Names mentioned in ladder's code (not ERR_LADDER_* codes, the addon's header guards or its export macro). */
function namesMentioned(): Set<string> {
  const found = new Set<string>();
  const files = [
    ...filesUnder('src', /\.ts$/),
    ...filesUnder('native', /\.(cc|h)$/),
    ...filesUnder('bin', /\.m?js$/),
    ...filesUnder('scripts', /\.m?[jt]s$/),
  ];
  for (const file of files)
    for (const m of readFileSync(file, 'utf8').matchAll(/(?<![A-Z0-9_])LADDER_[A-Z0-9_]+/g))
      if (!/_H_$/.test(m[0]) && m[0] !== 'LADDER_EXPORT') found.add(m[0]);
  // What tests and benches read from the environment (their own tuning, inherited by the commands they start).
  for (const file of [...filesUnder('test', /\.m?[jt]s$/), ...filesUnder('bench', /\.m?[jt]s$/)])
    for (const m of readFileSync(file, 'utf8').matchAll(/env(?:\.|\[')(LADDER_[A-Z0-9_]+)/g))
      found.add(m[1]!);
  return found;
}

test('every LADDER_* name the code mentions or reads is known, and every known one is read somewhere', () => {
  const mentioned = namesMentioned();
  assert.ok(mentioned.has('LADDER_NATIVE') && mentioned.has('LADDER_STORE') && mentioned.has('LADDER_DIST'));
  assert.deepEqual(
    [...mentioned].filter((n) => !KNOWN_ENV_NAMES.has(n)).sort(),
    [],
    'read but missing from ENV_SWITCHES/ENV_SETTINGS (src/shared/env.ts)',
  );
  assert.deepEqual(
    ENV_SETTINGS.filter((n) => !mentioned.has(n)),
    [],
    'listed but read nowhere',
  );
  assert.deepEqual(
    ENV_SETTINGS.filter((n) => ENV_SWITCHES.includes(n)),
    [],
    'listed twice',
  );
});

test('unknownEnvLines: one line per unknown name, the near one suggested, never the value', () => {
  const lines = unknownEnvLines({
    LADDER_NATVE_RELAY: '0',
    LADDER_PASWORD: 'hunter2-not-shown',
    LADDER_NATIVE: '0',
    LADDER_STORE: 'postgres://u:pw@h/db',
    LADDER_SOMETHING_ELSE_ENTIRELY: '1',
    'LADDER_\u001b[2Jx': '1',
    PATH: '/usr/bin',
    ladder_native: '0',
  });
  assert.deepEqual(lines, [
    'LADDER_\\e[2Jx is not a Ladder setting',
    'LADDER_NATVE_RELAY is not a Ladder setting (did you mean LADDER_NATIVE_RELAY?)',
    'LADDER_PASWORD is not a Ladder setting (did you mean LADDER_PASSWORD?)',
    'LADDER_SOMETHING_ELSE_ENTIRELY is not a Ladder setting',
  ]);
  assert.deepEqual(unknownEnvLines({ LADDER_NATIVE: '1', LADDER_KEY: 'ss://x', HOME: '/root' }), []);
});

test('ladder warns at start: the misspelt name once, before the command runs, the value nowhere', async () => {
  // LADDER_NATIVE=false stops the command at once (switch-env.test.ts): the warning comes first.
  const r = run(['server', '--password', 'env-names-pw', '--port', '0', '--host', '127.0.0.1'], {
    env: { LADDER_NATVE_RELAY: 'value-not-shown', LADDER_NATIVE: 'false' },
  });
  const stop = setTimeout(() => r.child.kill(), 15_000);
  const code = await r.exit;
  clearTimeout(stop);
  assert.equal(code, 2, r.stderr());
  assert.equal(
    r.stderr(),
    'ladder: warning: LADDER_NATVE_RELAY is not a Ladder setting (did you mean LADDER_NATIVE_RELAY?)\n' +
      'ladder: LADDER_NATIVE: expected 0 (off) or 1 (on), got "false"\n',
  );
  assert.ok(!r.stdout().includes('value-not-shown'));
});
