// `ladder keys add|edit --prefix auto|off|<value>` against a local SQLite store and a remote API
// (certificate pinned), shown by `keys list` and `keys url`; bad values refused in one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSsUrl } from '../../src/protocol/sip002/index.js';
import { tempDir } from './helpers.js';
import { inproc, remoteKeysApi } from './keys-inproc.js';

// A regex rather than "the line that starts with ss://": in-process runs capture process.stdout,
// which the test runner's own reporter may write to in between.
const ssLine = (out: string): string => /ss:\/\/\S+/.exec(out)![0];

test('ladder keys --prefix on the local store: add, edit, list, url; bad values refused', async (t) => {
  const dir = tempDir(t);
  const d = ['--data-dir', dir];
  let r = await inproc(['keys', '--init', 'add', '--name', 'Pin', '--prefix', '160301', '--no-qr', ...d]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^created key 0 "Pin": prefix 160301/);
  assert.equal(Buffer.from(parseSsUrl(ssLine(r.stdout)).prefix!).toString('hex'), '160301');
  r = await inproc(['keys', 'add', '--name', 'Off', '--prefix', 'off', '--no-qr', ...d]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(parseSsUrl(ssLine(r.stdout)).prefix, undefined);
  r = await inproc(['keys', 'add', '--name', 'Auto', '--no-qr', ...d]);
  assert.equal(parseSsUrl(ssLine(r.stdout)).prefix, undefined, 'auto: the static URL stays unprefixed');

  r = await inproc(['keys', 'list', ...d]);
  const rows = r.stdout.trim().split('\n');
  assert.match(rows[0]!, /PREFIX$/);
  assert.match(rows[1]!, /\s160301$/);
  assert.match(rows[2]!, /\soff$/);
  assert.match(rows[3]!, /\sauto$/);

  r = await inproc(['keys', 'edit', '2', '--prefix', 'POST%20', ...d]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'key 2 "Auto": prefix 504f535420');
  r = await inproc(['keys', 'url', '2', '--no-qr', ...d]);
  assert.match(
    r.stdout,
    /^Outline prefix: 504f535420 \(change: .* keys edit 2 --prefix auto\|off\|<value>\)$/m,
    'names the key',
  );
  assert.equal(Buffer.from(parseSsUrl(ssLine(r.stdout)).prefix!).toString(), 'POST ');

  // Refused in one line, nothing changed: syntax, length for the method, aes-128-gcm, no --prefix.
  const before = (await inproc(['keys', 'list', '--json', ...d])).stdout;
  for (const [args, re] of [
    [['keys', 'edit', '2', '--prefix', '%ZZ'], /^ladder: --prefix: bad percent-encoding/],
    [['keys', 'edit', '2', '--prefix', ''], /^ladder: --prefix: empty/],
    [
      ['keys', 'edit', '2', '--prefix', 'ab'.repeat(17)],
      /^ladder: --prefix: 17 bytes, but chacha20-ietf-poly1305 keys take at most 16/,
    ],
    [['keys', 'add', '--method', 'aes-128-gcm', '--prefix', 'POST%20', '--no-qr'], /take no prefix/],
    [['keys', 'edit', '2'], /^ladder: nothing to change: give --prefix/],
    [['keys', 'edit', '9', '--prefix', 'off'], /^ladder: no access key with id "9"/],
  ] as const) {
    r = await inproc([...args, ...d]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  }
  assert.equal((await inproc(['keys', 'list', '--json', ...d])).stdout, before);
});

test('ladder keys --prefix through a remote API (pinned certificate): add, edit, list --json, refusal', async (t) => {
  const { store, cfg } = await remoteKeysApi(t);

  const a = ['--api', cfg];
  let r = await inproc(['keys', 'add', '--prefix', '%16%03%01', '--no-qr', ...a]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(Buffer.from(parseSsUrl(ssLine(r.stdout)).prefix!).toString('hex'), '160301');
  r = await inproc(['keys', 'edit', '0', '--prefix', 'off', ...a]);
  assert.equal(r.stdout.trim(), 'key 0: prefix off');
  r = await inproc(['keys', 'list', '--json', ...a]);
  assert.equal((JSON.parse(r.stdout) as { prefix: string }[])[0]!.prefix, 'off');
  assert.equal((await store.getKey('0'))?.prefix, 'off');
  r = await inproc(['keys', 'edit', '0', '--prefix', 'GET /index.html?x', ...a]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^ladder: API error 400: Invalid "prefix": 17 bytes/);
  r = await inproc(['keys', 'add', '--method', 'aes-128-gcm', '--prefix', 'GET /', '--no-qr', ...a]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /take no prefix/);
  assert.equal((await store.listKeys()).length, 1);
});
