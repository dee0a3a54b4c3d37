// Key ids and names come from API callers: every CLI command that prints them escapes control
// characters, so a name cannot recolour, clear or forge lines in the operator's terminal
// (issue 14, item 6). Through the real CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openStore, parseStoreLocation } from '../../src/store/index.js';
import { tempDir } from '../api/helpers.js';
import { runLadder } from '../helpers/ladder-run.js';

// eslint-disable-next-line no-control-regex
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/;
const EVIL = 'x\u001b[31m\nladder: fake\u0000\u202e';

test('server access-config and keys list/rename print ids and names escaped', async (t) => {
  const dir = tempDir(t);
  const store = await openStore(parseStoreLocation(undefined, dir), {
    defaults: { hostname: '127.0.0.1', port: 8388 },
  });
  await store.createKey({
    id: EVIL,
    name: EVIL,
    secret: 'p'.repeat(22),
    port: 8388,
    method: 'chacha20-ietf-poly1305',
  });
  await store.createKey({
    id: 'plain',
    name: 'plain',
    secret: 'q'.repeat(22),
    port: 8388,
    method: 'chacha20-ietf-poly1305',
  });
  await store.close();
  const cfg = await runLadder(['server', 'access-config', '--data-dir', dir]);
  assert.equal(cfg.code, 0, cfg.stderr);
  assert.ok(!RAW.test(cfg.stdout), JSON.stringify(cfg.stdout));
  assert.ok(
    cfg.stdout.includes('x\\e[31m\\nladder: fake\\x00\\u{202e} "x\\e[31m\\nladder: fake\\x00\\u{202e}"'),
    cfg.stdout,
  );
  assert.ok(!/^ladder: fake/m.test(cfg.stdout), 'no forged line');
  // Control: the plain key prints as it is.
  assert.match(cfg.stdout, /^ {2}plain "plain"$/m);
  const list = await runLadder(['keys', '--data-dir', dir, 'list']);
  assert.equal(list.code, 0, list.stderr);
  assert.ok(!RAW.test(list.stdout), JSON.stringify(list.stdout));
  assert.equal(list.stdout.trimEnd().split('\n').length, 3);
  const rm = await runLadder(['keys', '--data-dir', dir, 'rename', 'plain', 'y\u001b[2J\nladder: fake']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.ok(!RAW.test(rm.stdout), JSON.stringify(rm.stdout));
  assert.equal(rm.stdout.trimEnd().split('\n').length, 1, rm.stdout);
});
