// Migration 0002_key_prefix on a real SQLite file: a store made before it (0001 only) opens,
// gains the column, reads its old keys as 'auto', and keeps a new setting across a reopen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kysely, Migrator, sql } from 'kysely';
import { createDialect } from '../../src/store/dialect.js';
import { migrationProvider } from '../../src/store/migrations.js';
import { openStore, parseStoreLocation } from '../../src/store/index.js';

test('0002_key_prefix: an 0001 store upgrades, old keys read prefix auto, a setting survives a reopen', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-mig-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const loc = parseStoreLocation(undefined, dir);
  const old = new Kysely<unknown>({ dialect: createDialect(loc).dialect });
  const r = await new Migrator({ db: old, provider: migrationProvider }).migrateTo('0001_init');
  assert.equal(r.error, undefined);
  await sql`insert into keys (id, name, method, secret, port, access_token, created_at, seq)
            values ('old', '', 'aes-256-gcm', 'pw', 8388, 'tok', 1, 1)`.execute(old);
  const cols = await sql<{ name: string }>`select name from pragma_table_info('keys')`.execute(old);
  assert.ok(!cols.rows.some((c) => c.name === 'prefix'), 'control: no prefix column before the migration');
  await old.destroy();

  let store = await openStore(loc);
  try {
    assert.equal((await store.getKey('old'))?.prefix, 'auto');
    assert.equal((await store.updateKey('old', { prefix: '160301' }))?.prefix, '160301');
    assert.equal(
      (await store.createKey({ method: 'aes-192-gcm', secret: 's', port: 1, prefix: 'off' })).prefix,
      'off',
    );
  } finally {
    await store.close();
  }
  store = await openStore(loc);
  try {
    assert.equal((await store.getKey('old'))?.prefix, '160301');
    assert.deepEqual(
      (await store.listKeys()).map((k) => [k.method, k.prefix]),
      [
        ['aes-256-gcm', '160301'],
        ['aes-192-gcm', 'off'],
      ],
    );
  } finally {
    await store.close();
  }
});
