/**
 * LADDER_STORE and LADDER_API stand in for --store and --api, never for a typed flag of the other
 * target: `LADDER_STORE=… ladder keys --api URL` manages the API's keys (before: "--api cannot be
 * combined with --data-dir, --store or --init"), `LADDER_API=… ladder keys --data-dir D` the
 * store in D, and a typed --data-dir wins over a SQLite LADDER_STORE. Each yielding variable is
 * named in a one-line note; a conflict left (both variables, no flag) names both.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanEnv } from '../helpers/clean-env.js';
import { runProgram } from '../helpers/ladder-run.js';
import { LADDER_BIN } from '../helpers/peers.js';

const API = 'https://127.0.0.1:1/abc';
const PIN = ['--cert-sha256', 'AA'.repeat(32)];

function ladder(args: string[], env: NodeJS.ProcessEnv, cwd: string) {
  const e = cleanEnv({ LADDER_LOG_LEVEL: 'silent', ...env });
  return runProgram(process.execPath, [LADDER_BIN, ...args], e, { cwd, killAfterMs: 30_000 });
}

test('keys: a typed --api or --data-dir wins over the other target from the environment', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-env-targets-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const exported = join(dir, 'exported.db');
  const typed = join(dir, 'typed');

  // LADDER_STORE exported, --api typed: the API is called (refused on port 1), the store ignored.
  const a = await ladder(['keys', '--api', API, ...PIN, 'list'], { LADDER_STORE: `sqlite:${exported}` }, dir);
  assert.doesNotMatch(a.stderr, /cannot be combined/);
  assert.match(a.stderr, /^ladder: LADDER_STORE ignored: --api names a server$/m);
  assert.match(a.stderr, /127\.0\.0\.1:1|ECONNREFUSED|refused/i);

  // LADDER_API exported, --data-dir typed: the local store in it is the one looked for.
  const b = await ladder(['keys', '--data-dir', typed, 'list'], { LADDER_API: API }, dir);
  assert.doesNotMatch(b.stderr, /cannot be combined/);
  assert.match(b.stderr, /^ladder: LADDER_API ignored: /m);
  assert.ok(b.stderr.includes(join(typed, 'ladder.db')), b.stderr);

  // A SQLite LADDER_STORE exported, --data-dir typed: the data directory's store, not the exported one.
  const c = await ladder(['keys', '--data-dir', typed, 'list'], { LADDER_STORE: `sqlite:${exported}` }, dir);
  assert.equal(c.code, 2, c.stderr);
  assert.match(c.stderr, /^ladder: LADDER_STORE ignored: --data-dir names the store/m);
  assert.ok(c.stderr.includes(join(typed, 'ladder.db')), c.stderr);
  assert.ok(!c.stderr.includes(exported), c.stderr);

  // Both exported, nothing typed: refused, naming both variables.
  const d = await ladder(['keys', 'list'], { LADDER_STORE: `sqlite:${exported}`, LADDER_API: API }, dir);
  assert.equal(d.code, 2, d.stderr);
  assert.match(d.stderr, /LADDER_API and LADDER_STORE are both set/);

  // Typed flags still conflict as before.
  const e = await ladder(['keys', '--api', API, '--data-dir', typed, 'list'], {}, dir);
  assert.match(e.stderr, /--api cannot be combined with --data-dir/);
});

test('nodes, store: a conflict with the store from LADDER_STORE names the variable', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-env-targets-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const n = await ladder(['nodes', 'list'], { LADDER_STORE: `sqlite:${join(dir, 'x.db')}` }, dir);
  assert.equal(n.code, 2, n.stderr);
  assert.match(n.stderr, /fleet nodes live in a PostgreSQL store.*LADDER_STORE names one/);
  const s = await ladder(['store', 'check'], { LADDER_STORE: 'postgres://u@127.0.0.1:1/x' }, dir);
  assert.equal(s.code, 2, s.stderr);
  assert.match(s.stderr, /for a SQLite store.*LADDER_STORE names one/);
});

test('keys: a bad LADDER_API is named as LADDER_API, and a pin from the access config JSON as its certSha256 (not --api, --cert-sha256)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-env-api-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const broken = await ladder(['keys', 'list'], { LADDER_API: '{"apiUrl":"https://127.0.0.1:1/abc"' }, dir);
  assert.equal(broken.code, 2);
  assert.match(broken.stderr, /^ladder: LADDER_API: looks like JSON but does not parse; /m);
  const badPin = await ladder(
    ['keys', 'list'],
    { LADDER_API: JSON.stringify({ apiUrl: API, certSha256: '00' }) },
    dir,
  );
  assert.equal(badPin.code, 2);
  assert.match(badPin.stderr, /^ladder: the certSha256 in LADDER_API: expected 64 hex digits/m);
  const typed = await ladder(['keys', '--api', API, '--cert-sha256', '00', 'list'], {}, dir);
  assert.match(
    typed.stderr,
    /^ladder: --cert-sha256: expected 64 hex digits/m,
    'a typed flag is named as typed',
  );
});
