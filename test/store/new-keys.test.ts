import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAccessKeys, openStore, parseStoreLocation, StoreError } from '../../src/store/index.js';

test('createAccessKeys: one key or many, generated secrets, the port for new keys, numbered names', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-new-keys-'));
  const store = await openStore(parseStoreLocation(undefined, dir), {
    defaults: { hostname: '127.0.0.1', port: 8388 },
  });
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const one = await createAccessKeys(store, { method: 'aes-256-gcm', name: 'alice', dataLimitBytes: 1000 });
  assert.equal(one.keys.length, 1);
  const [a] = one.keys;
  assert.equal(a!.name, 'alice');
  assert.equal(a!.port, one.settings.portForNewAccessKeys);
  assert.equal(a!.dataLimitBytes, 1000);
  assert.match(a!.secret, /^[A-Za-z0-9_-]{22}$/);

  const many = await createAccessKeys(store, {
    method: '2022-blake3-aes-128-gcm',
    name: 'team',
    count: 3,
    enabled: false,
  });
  assert.deepEqual(
    many.keys.map((k) => k.name),
    ['team 1', 'team 2', 'team 3'],
  );
  assert.equal(new Set(many.keys.map((k) => k.secret)).size, 3);
  for (const k of many.keys) {
    assert.equal(Buffer.from(k.secret, 'base64').length, 16);
    assert.equal(k.enabled, false);
  }

  const chosen = await createAccessKeys(store, { method: 'aes-128-gcm', id: 'x', secret: 'pw', port: 9000 });
  assert.deepEqual([chosen.keys[0]!.id, chosen.keys[0]!.secret, chosen.keys[0]!.port], ['x', 'pw', 9000]);
  await assert.rejects(
    createAccessKeys(store, { method: 'aes-128-gcm', id: 'x' }),
    (e: unknown) => e instanceof StoreError && e.code === 'KEY_EXISTS',
  );
});
