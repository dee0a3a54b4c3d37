/**
 * `ladder server access-config` lists every key's URLs; a key that does not connect now says so,
 * whatever the reason, as `keys list` and `keys url` do. Before, only a disabled key was marked:
 * an expired key's or an over-limit key's URLs were printed like a working key's, and an operator
 * who handed one out learned why it failed only from the person it failed for.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../api/helpers.js';
import { inproc } from '../api/keys-inproc.js';
import { openStore, parseStoreLocation } from '../../src/store/index.js';
import { accessConfigText } from '../../src/cli/commands/server-access-config.js';

test('server access-config marks disabled, expired and over-limit keys, and only those', async (t) => {
  const dir = tempDir(t);
  const d = ['--data-dir', dir];
  for (const name of ['working', 'off', 'old', 'full']) {
    const r = await inproc(['keys', ...(name === 'working' ? ['--init'] : []), 'add', '--name', name, ...d]);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.equal((await inproc(['keys', 'disable', '1', ...d])).code, 0);
  assert.equal((await inproc(['keys', 'expire', '2', '2020-01-01', '--force', ...d])).code, 0);
  assert.equal((await inproc(['keys', 'limit', '3', '1kB', ...d])).code, 0);
  const store = await openStore(parseStoreLocation(undefined, dir));
  try {
    store.addBytes('3', 600, 600);
    await store.flush();
  } finally {
    await store.close();
  }

  const text = await accessConfigText({ dataDir: dir });
  const heads = text.split('\n').filter((l) => /^ {2}\d+ "/.test(l));
  assert.deepEqual(heads, [
    '  0 "working"',
    '  1 "off" (disabled: its URLs do not connect now)',
    '  2 "old" (expired: its URLs do not connect now)',
    '  3 "full" (over limit: its URLs do not connect now)',
  ]);
});
