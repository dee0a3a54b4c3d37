// Per-key device and speed limits in the store (migration 0007_key_limits): an existing 0006
// database (a real SQLite file; a real PostgreSQL server) keeps every key and gains null limits;
// writes store them and refuse nonsense; a limit change bumps the key's version (the fleet's change
// feed); `store check` names a key whose hand-edited limit is nonsense; backup/restore and the key
// cache keep them; the enforcer hands a changed or removed limit on as an upsert.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, sql } from 'kysely';
import type Pg from 'pg';
import type { KeyDelta, RuntimeKey, ServerControl } from '../../src/shared/control.js';
import { createDialect } from '../../src/store/dialect.js';
import { migrationProvider } from '../../src/store/migrations.js';
import {
  backupStore,
  checkStore,
  KeyEnforcer,
  loadKeyCache,
  openStore,
  parseStoreLocation,
  restoreStore,
  saveKeyCache,
  StoreError,
  type StoreLocation,
} from '../../src/store/index.js';
import {
  createDatabase,
  HAVE_POSTGRES,
  SKIP_WITHOUT_POSTGRES,
  startPostgres,
  type PgCluster,
} from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';

let pg: PgCluster | undefined;
const dirs: string[] = [];
before(async () => {
  if (HAVE_POSTGRES) pg = await startPostgres();
});
after(() => {
  pg?.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ladder-key-limits-'));
  dirs.push(d);
  return d;
}

async function freshPostgres(name: string): Promise<StoreLocation> {
  return parseStoreLocation(await createDatabase(pg!.url, name), '.');
}

/** A store as session 19 left it: migrated to 0006 only, with two keys. */
async function store0006(loc: StoreLocation): Promise<void> {
  const old = new Kysely<unknown>({ dialect: createDialect(loc).dialect });
  try {
    const r = await new Migrator({ db: old, provider: migrationProvider }).migrateTo('0006_key_versions');
    assert.equal(r.error, undefined);
    for (const [id, seq] of [
      ['a', 1],
      ['b', 2],
    ] as const)
      await sql`insert into keys (id, name, method, secret, port, data_limit_bytes, access_token, created_at, seq)
                values (${id}, ${`key ${id}`}, 'aes-256-gcm', ${`pw-${id}`}, 20123, 5000, ${`tok-${id}`}, 1, ${seq})`.execute(
        old,
      );
    const cols = await (
      loc.kind === 'postgres'
        ? sql<{
            name: string;
          }>`select column_name as name from information_schema.columns where table_name = 'keys'`
        : sql<{ name: string }>`select name from pragma_table_info('keys')`
    ).execute(old);
    assert.ok(!cols.rows.some((c) => c.name === 'device_limit'), 'control: no limit columns before 0007');
  } finally {
    await old.destroy();
  }
}

/** Open the 0006 store (migrating it), check old keys and the write paths, reopen: kept. */
async function migrateAndUse(loc: StoreLocation): Promise<void> {
  await store0006(loc);
  let store = await openStore(loc, { flushIntervalMs: 3_600_000 });
  try {
    const old = await store.listKeys();
    assert.deepEqual(
      old.map((k) => [k.id, k.name, k.secret, k.dataLimitBytes, k.deviceLimit, k.speedLimit]),
      [
        ['a', 'key a', 'pw-a', 5000, null, null],
        ['b', 'key b', 'pw-b', 5000, null, null],
      ],
    );
    // A limit change is a key change: the delta read after the version applied finds it.
    const v0 = (await store.keyChanges!()).version;
    assert.equal((await store.updateKey('a', { deviceLimit: 3 }))?.deviceLimit, 3);
    let changes = await store.keyChanges!(v0);
    assert.deepEqual(
      changes.changed.map((k) => [k.id, k.deviceLimit]),
      [['a', 3]],
    );
    const v1 = changes.version;
    assert.ok(v1 > v0);
    assert.equal((await store.updateKey('b', { speedLimit: 1_250_000 }))?.speedLimit, 1_250_000);
    changes = await store.keyChanges!(v1);
    assert.deepEqual(
      changes.changed.map((k) => [k.id, k.speedLimit]),
      [['b', 1_250_000]],
    );
    // Removing one is a change too.
    await store.updateKey('a', { deviceLimit: null });
    changes = await store.keyChanges!(changes.version);
    assert.deepEqual(
      changes.changed.map((k) => [k.id, k.deviceLimit]),
      [['a', null]],
    );
    const made = await store.createKey({
      method: 'chacha20-ietf-poly1305',
      secret: 's',
      port: 20123,
      deviceLimit: 2,
      speedLimit: 2048,
    });
    assert.deepEqual([made.deviceLimit, made.speedLimit], [2, 2048]);
    // Nonsense is refused and nothing is written.
    for (const patch of [
      { deviceLimit: 0 },
      { deviceLimit: 2.5 },
      { speedLimit: 1000 },
      { speedLimit: 2 ** 41 },
    ])
      await assert.rejects(
        store.updateKey('b', patch),
        (e: unknown) => e instanceof StoreError && e.code === 'INVALID_LIMIT',
        JSON.stringify(patch),
      );
    await assert.rejects(
      store.createKey({ method: 'aes-256-gcm', secret: 'x', port: 1, deviceLimit: -1 }),
      (e: unknown) => e instanceof StoreError && e.code === 'INVALID_LIMIT',
    );
    assert.equal((await store.getKey('b'))?.speedLimit, 1_250_000);
  } finally {
    await store.close();
  }
  store = await openStore(loc, { flushIntervalMs: 3_600_000 });
  try {
    assert.deepEqual(
      (await store.listKeys()).map((k) => [k.id, k.deviceLimit, k.speedLimit]),
      [
        ['a', null, null],
        ['b', null, 1_250_000],
        ['0', 2, 2048],
      ],
    );
  } finally {
    await store.close();
  }
}

test('0007_key_limits on a SQLite 0006 file: keys kept with null limits, writes, versions, reopen', async () => {
  await migrateAndUse(parseStoreLocation(undefined, tempDir()));
});

test(
  '0007_key_limits on PostgreSQL 0006: the same, and a limit change is announced to the fleet',
  {
    skip: SKIP_WITHOUT_POSTGRES,
  },
  async () => {
    const loc = await freshPostgres('limits_mig');
    await migrateAndUse(loc);
    // Every node LISTENs on ladder_keys (src/fleet/key-listener.ts): a limit change must NOTIFY.
    const { Client } = createRequire(import.meta.url)('pg') as typeof Pg;
    const listener = new Client({ connectionString: loc.kind === 'postgres' ? loc.url : '' });
    await listener.connect();
    const store = await openStore(loc, { flushIntervalMs: 3_600_000 });
    try {
      await listener.query('listen ladder_keys');
      const heard: string[] = [];
      listener.on('notification', (n) => heard.push(n.payload ?? ''));
      for (const patch of [{ deviceLimit: 7 }, { speedLimit: 8192 }, { speedLimit: null }]) {
        const before = heard.length;
        await store.updateKey('b', patch);
        await waitFor(() => heard.length > before, {
          timeoutMs: 5000,
          message: `NOTIFY after ${JSON.stringify(patch)}`,
        });
      }
    } finally {
      await store.close();
      await listener.end();
    }
  },
);

test('store check names a key whose hand-edited limit is nonsense; backup and restore keep limits', async () => {
  const dir = tempDir();
  const loc = parseStoreLocation(undefined, dir);
  assert.equal(loc.kind, 'sqlite');
  const path = loc.kind === 'sqlite' ? loc.path : '';
  const store = await openStore(loc);
  const key = await store.createKey({
    method: 'aes-256-gcm',
    secret: 's',
    port: 20124,
    id: 'k7',
    speedLimit: 4096,
  });
  await store.updateKey(key.id, { deviceLimit: 4 });
  await store.close();
  assert.equal(checkStore(path).keys, 1);
  const backup = join(dir, 'backup.db');
  await backupStore(path, backup);

  for (const [column, value, field] of [
    ['device_limit', 0, 'deviceLimit'],
    ['device_limit', 2.5, 'deviceLimit'],
    ['speed_limit', 'fast', 'speedLimit'],
    ['speed_limit', -5, 'speedLimit'],
  ] as const) {
    const db = new BetterSqlite3(path);
    db.prepare(`update keys set device_limit = 4, speed_limit = 4096 where id = 'k7'`).run();
    db.prepare(`update keys set ${column} = ? where id = 'k7'`).run(value);
    db.close();
    assert.throws(
      () => checkStore(path),
      (e: unknown) => {
        const m = (e as Error).message;
        assert.ok(e instanceof StoreError, String(e));
        assert.ok(m.includes(`key "k7" has ${field} ${JSON.stringify(value)}, which must be`), m);
        assert.ok(!m.includes('\n'), 'one line');
        assert.match(m, field === 'deviceLimit' ? /keys devices "k7" N\|none/ : /keys speed "k7" RATE\|none/);
        return true;
      },
    );
    // The data plane reads such a value as no limit.
    const s = await openStore(loc);
    assert.equal((await s.getKey('k7'))?.[field], null);
    await s.close();
  }

  await restoreStore(backup, path);
  assert.equal(checkStore(path).keys, 1);
  const back = await openStore(loc);
  try {
    const k = await back.getKey('k7');
    assert.deepEqual([k?.deviceLimit, k?.speedLimit], [4, 4096]);
  } finally {
    await back.close();
  }
});

test('the key cache keeps limits and refuses a nonsense one', () => {
  const file = join(tempDir(), 'keys-cache.json');
  const keys = [
    { id: '1', method: 'aes-256-gcm', secret: 's', port: 20125, deviceLimit: 2, speedLimit: 131072 },
    { id: '2', method: 'aes-256-gcm', secret: 't', port: 20125 },
  ];
  saveKeyCache(file, { savedAt: 1, port: 20125, keys });
  assert.deepEqual(loadKeyCache(file)?.keys, keys);
  writeFileSync(
    file,
    JSON.stringify({ version: 1, savedAt: 1, port: 20125, keys: [{ ...keys[0], deviceLimit: 0 }] }),
  );
  assert.throws(() => loadKeyCache(file), /a key entry is malformed/);
});

/** A data plane that records every delta the enforcer hands it. */
class DeltaControl implements ServerControl {
  readonly deltas: KeyDelta[] = [];
  readonly keys = new Map<string, RuntimeKey>();
  setKeys(): void {
    throw new Error('the enforcer should hand deltas');
  }
  applyKeyDelta(d: KeyDelta): void {
    this.deltas.push(d);
    for (const id of d.remove) this.keys.delete(id);
    for (const k of d.upsert) this.keys.set(k.id, k);
  }
  closeKeyConnections(): number {
    return 0;
  }
  openConnections(): ReadonlyMap<string, number> {
    return new Map();
  }
}

test('enforcer: a set, changed or removed limit is an upsert of that key alone; no limit, no field', async () => {
  const store = await openStore(parseStoreLocation(undefined, tempDir()), { flushIntervalMs: 3_600_000 });
  const control = new DeltaControl();
  const enforcer = new KeyEnforcer({ store, control, intervalMs: 3_600_000 });
  try {
    await store.createKey({ method: 'aes-256-gcm', secret: 'a', port: 20126, id: 'a' });
    await store.createKey({ method: 'aes-256-gcm', secret: 'b', port: 20126, id: 'b' });
    await enforcer.start();
    assert.equal(control.deltas.length, 1);
    assert.deepEqual(control.keys.get('a'), { id: 'a', method: 'aes-256-gcm', secret: 'a', port: 20126 });
    const step = async (): Promise<KeyDelta | undefined> => {
      const before = control.deltas.length;
      await enforcer.refresh();
      assert.ok(control.deltas.length - before <= 1);
      return control.deltas.length > before ? control.deltas.at(-1) : undefined;
    };
    await store.updateKey('a', { deviceLimit: 2 });
    assert.deepEqual(await step(), {
      upsert: [{ id: 'a', method: 'aes-256-gcm', secret: 'a', port: 20126, deviceLimit: 2 }],
      remove: [],
    });
    await store.updateKey('a', { speedLimit: 65536 });
    assert.deepEqual((await step())?.upsert, [
      { id: 'a', method: 'aes-256-gcm', secret: 'a', port: 20126, deviceLimit: 2, speedLimit: 65536 },
    ]);
    await store.updateKey('a', { deviceLimit: null, speedLimit: null });
    const removed = await step();
    assert.deepEqual(removed?.upsert, [{ id: 'a', method: 'aes-256-gcm', secret: 'a', port: 20126 }]);
    assert.ok(!('deviceLimit' in removed!.upsert[0]!), 'no limit: no field at all');
    // A rename is no data-plane change: nothing handed on.
    await store.updateKey('b', { name: 'renamed' });
    assert.equal(await step(), undefined);
    // A full read finds nothing to change either.
    await enforcer.refresh({ full: true });
    assert.equal(control.deltas.length, 4);
  } finally {
    enforcer.stop();
    await store.close();
  }
});
