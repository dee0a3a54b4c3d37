/**
 * The first key of a store that has none (managed mode's "Initial key"), created once even when
 * several fleet nodes start at the same moment on an empty PostgreSQL store: the check and the
 * creation run under a PostgreSQL advisory lock held on a connection of its own, so the second
 * node waits, then finds the first node's key. The lock is a session lock: a node that dies
 * holding it releases it with its connection. A SQLite store serves one server: no lock.
 */
import { createRequire } from 'node:module';
import type Pg from 'pg';
import type { StoreLocation } from './dialect.js';
import type { KeyRecord, Store } from './types.js';

/** The advisory lock's key (any bigint the fleet agrees on): "ladder:first-key". */
const FIRST_KEY_LOCK = 0x6c61_6464_6572_01n;

export interface FirstKeyHooks {
  /** Tests: runs between the "no key yet" read and the creation (widens the race window). */
  afterCheck?: () => Promise<void>;
  /** Tests (the negative control): check and create without the lock. */
  unlocked?: boolean;
}

/**
 * The store's first key; `create` makes one (and `created` is true) when it has none.
 * On PostgreSQL, check-and-create holds the fleet-wide lock.
 */
export async function ensureFirstKey(
  store: Pick<Store, 'listKeys'>,
  loc: StoreLocation,
  create: () => Promise<KeyRecord>,
  hooks: FirstKeyHooks = {},
): Promise<{ key: KeyRecord; created: boolean }> {
  const checkAndCreate = async (): Promise<{ key: KeyRecord; created: boolean }> => {
    const first = (await store.listKeys())[0];
    if (first) return { key: first, created: false };
    await hooks.afterCheck?.();
    return { key: await create(), created: true };
  };
  if (loc.kind !== 'postgres' || hooks.unlocked === true) return checkAndCreate();
  const { Client } = createRequire(import.meta.url)('pg') as typeof Pg;
  const client = new Client({
    connectionString: loc.url,
    connectionTimeoutMillis: 30_000,
    query_timeout: 60_000,
    application_name: 'ladder-first-key',
  });
  client.on('error', () => undefined); // a broken connection fails the query in flight
  await client.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [FIRST_KEY_LOCK.toString()]);
    return await checkAndCreate();
  } finally {
    // Ending the session releases the lock too; unlocking first lets the next node go at once.
    await client.query('select pg_advisory_unlock($1)', [FIRST_KEY_LOCK.toString()]).catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}
