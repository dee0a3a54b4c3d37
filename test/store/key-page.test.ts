/**
 * Store.listKeysPage (keyset pages in listKeys' order) and Store.keysVersion, on SQLite and on a
 * real PostgreSQL server: pages add up to listKeys whatever the page size, ids that sort out of
 * creation order ("10" < "9", caller-chosen ids) included; every key or settings change advances
 * the version, a read does not.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { openStore, parseStoreLocation, type KeyCursor, type Store } from '../../src/store/index.js';
import { HAVE_POSTGRES, SKIP_WITHOUT_POSTGRES, startPostgres, type PgCluster } from '../helpers/postgres.js';
import { tempDir } from '../api/helpers.js';

const base = { method: 'chacha20-ietf-poly1305', secret: 'pw', port: 4444 };

async function check(store: Store): Promise<void> {
  const v0 = store.keysVersion;
  for (let i = 0; i < 12; i++) await store.createKey({ ...base, name: `k${i}` });
  await store.createKey({ ...base, id: 'a-chosen-id' });
  await store.createKey({ ...base, id: '0000' });
  assert.ok(store.keysVersion >= v0 + 14, 'each creation advances the version');
  const all = (await store.listKeys()).map((k) => k.id);
  assert.equal(all.length, 14);
  for (const limit of [1, 3, 5, 14, 100]) {
    const seen: string[] = [];
    let after: KeyCursor | undefined;
    for (let i = 0; i < 20; i++) {
      const page = await store.listKeysPage(limit, after);
      seen.push(...page.keys.map((k) => k.id));
      if (page.next === undefined) break;
      assert.equal(page.keys.length, limit);
      after = page.next;
    }
    assert.deepEqual(seen, all, `pages of ${limit}`);
  }
  let v = store.keysVersion;
  await store.listKeysPage(5);
  await store.getSettings();
  assert.equal(store.keysVersion, v, 'reads leave the version');
  await store.updateKey('3', { name: 'renamed' });
  assert.ok(store.keysVersion > v, 'an update advances it');
  v = store.keysVersion;
  await store.deleteKey('4');
  assert.ok(store.keysVersion > v, 'a deletion advances it');
  v = store.keysVersion;
  await store.updateSettings({ hostnameForAccessKeys: 'example.net' });
  assert.ok(store.keysVersion > v, 'a settings change advances it');
}

test('SQLite: keyset pages add up to listKeys; changes advance keysVersion', async (t) => {
  const store = await openStore(parseStoreLocation(undefined, tempDir(t)));
  t.after(() => store.close());
  await check(store);
});

let pg: PgCluster | undefined;
after(() => pg?.destroy());

test('PostgreSQL: the same', { skip: SKIP_WITHOUT_POSTGRES }, async (t) => {
  if (!HAVE_POSTGRES) return;
  pg = await startPostgres();
  const store = await openStore(parseStoreLocation(pg.url, '.'));
  t.after(() => store.close());
  await check(store);
});
