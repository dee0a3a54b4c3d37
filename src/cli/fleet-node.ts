import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirs } from '../shared/fs.js';
import type { Logger } from '../shared/logger.js';
import type { CachedKey, KeyCache, KyselyStore } from '../store/index.js';
import { UsageError } from './errors.js';

/**
 * What a managed server on a PostgreSQL store (a fleet node) keeps beside the shared database:
 * its name as a usage writer, and the last key set it applied (so it can start while the database
 * is down). See docs/fleet.md.
 */

const NODE_ID_FILE = 'node-id';

/** The node's usage-writer id: --node NAME, else an id made once and kept in the data directory. */
export function nodeWriterId(node: string | undefined, dataDir: string): string {
  if (node !== undefined && node !== '') return node;
  const file = join(dataDir, NODE_ID_FILE);
  try {
    const id = readFileSync(file, 'utf8').trim();
    if (/^[\w.-]{1,64}$/.test(id)) return id;
  } catch {
    // none yet
  }
  const id = `node-${randomBytes(6).toString('hex')}`;
  makeDirs(dataDir);
  writeFileSync(file, `${id}\n`, { mode: 0o600 });
  return id;
}

/**
 * The store did not answer at start (opened offline): the cached key set to serve until it does,
 * or a refusal when there is none. Says so in one line either way.
 */
export async function cachedKeysForOfflineStart(
  store: KyselyStore,
  dataDir: string,
  log: Logger,
): Promise<KeyCache | undefined> {
  if (store.available) return undefined;
  const { KEY_CACHE_FILE, loadKeyCache, StoreError } = await import('../store/index.js');
  const file = join(dataDir, KEY_CACHE_FILE);
  let cache: KeyCache | undefined;
  try {
    cache = loadKeyCache(file);
  } catch (err) {
    await store.close();
    if (err instanceof StoreError) throw new UsageError(err.message);
    throw err;
  }
  if (!cache) {
    await store.close();
    throw new UsageError(
      `store: PostgreSQL is unreachable and this node has no cached key set (${file}); it cannot start without the store`,
    );
  }
  log.warn(
    { keys: cache.keys.length, file },
    'store unreachable at start: serving the cached key set until it is back (the management API starts then)',
  );
  return cache;
}

/** Keeps the node's key cache equal to the key set its enforcer applied (owner-only, atomic). */
export async function keyCacheWriter(
  dataDir: string,
  port: () => number,
  log: Logger,
): Promise<(active: readonly CachedKey[]) => void> {
  const { KEY_CACHE_FILE, saveKeyCache } = await import('../store/index.js');
  const file = join(dataDir, KEY_CACHE_FILE);
  return (active) => {
    try {
      makeDirs(dataDir);
      saveKeyCache(file, { savedAt: Date.now(), port: port(), keys: [...active] });
    } catch (err) {
      log.warn({ file, err: (err as Error).message }, 'cannot write the key cache');
    }
  };
}
