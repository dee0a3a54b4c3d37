import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { RuntimeKey } from '../../src/shared/control.js';
import { createAccessKeys, KeyEnforcer, openStore, type StoreLocation } from '../../src/store/index.js';

const psk = (n: number) => randomBytes(n).toString('base64');

/**
 * The same checks on SQLite and PostgreSQL: 2022 keys (multi-user "iPSK:uPSK" and single-user)
 * and the server's identity PSKs survive a restart unchanged, concurrent first requests for an
 * identity PSK all get one and the same, and the data plane is handed the secrets as stored.
 */
export async function check2022RoundTrip(loc: StoreLocation): Promise<void> {
  let store = await openStore(loc);
  const method = '2022-blake3-aes-128-gcm';
  const ids = await Promise.all(Array.from({ length: 20 }, () => store.identityKey(method, () => psk(16))));
  assert.equal(new Set(ids).size, 1, 'concurrent callers get one identity PSK');
  const ipsk = ids[0]!;
  const other = await store.identityKey('2022-blake3-aes-256-gcm', () => psk(32));
  assert.notEqual(other, ipsk);
  const { keys } = await createAccessKeys(store, {
    method,
    count: 3,
    name: 'm',
    makeSecret: () => `${ipsk}:${psk(16)}`,
  });
  const single = await store.createKey({
    method: '2022-blake3-chacha20-poly1305',
    secret: psk(32),
    port: 4444,
  });
  await store.close();

  store = await openStore(loc);
  try {
    assert.equal(await store.identityKey(method, () => 'not used'), ipsk, 'kept across a restart');
    for (const k of [...keys, single]) assert.deepEqual(await store.getKey(k.id), k);
    let given: readonly RuntimeKey[] = [];
    const enforcer = new KeyEnforcer({
      store,
      control: {
        setKeys: (ks) => (given = ks),
        closeKeyConnections: () => 0,
        openConnections: () => new Map(),
      },
    });
    await enforcer.refresh();
    for (const k of [...keys, single]) {
      assert.equal(given.find((g) => g.id === k.id)?.secret, k.secret, 'runtime key = stored secret');
    }
    // Settings readers ignore the identity rows.
    assert.equal(typeof (await store.getSettings()).apiPrefix, 'string');
    for (const k of [...keys, single]) await store.deleteKey(k.id);
  } finally {
    await store.close();
  }
}
