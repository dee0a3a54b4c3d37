import { readFileSync } from 'node:fs';
import { replaceFileSync } from '../shared/data-file.js';
import type { RuntimeKey } from '../shared/control.js';
import { limitProblem } from './key-limits.js';
import { StoreError } from './types.js';

/** A usable key as the data plane had it (its device and speed limits included), with its port. */
export type CachedKey = RuntimeKey & { port: number };

/**
 * The last key set a node applied, kept in its data directory (`keys-cache.json`) so a node that
 * starts while PostgreSQL is down can serve the keys it knew (revocations included: a removed key
 * is not in it). It holds secrets: owner-only (0600), written whole or not at all
 * (`replaceFileSync`).
 */
export interface KeyCache {
  version: 1;
  savedAt: number;
  /** The primary data port (the port for new keys). */
  port: number;
  keys: CachedKey[];
}

export const KEY_CACHE_FILE = 'keys-cache.json';

export function saveKeyCache(path: string, cache: Omit<KeyCache, 'version'>): void {
  replaceFileSync(path, JSON.stringify({ version: 1, ...cache }));
}

function damagedCache(path: string, why: string): StoreError {
  return new StoreError(
    'STORE_OPEN_FAILED',
    `store: the cached key set ${path} is damaged (${why}); start when PostgreSQL is reachable, or remove the file`,
  );
}

const isPort = (v: unknown): v is number =>
  Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 65535;

/** The cache, undefined when there is none; a damaged one is refused (one line naming the file). */
export function loadKeyCache(path: string): KeyCache | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StoreError(
      'STORE_OPEN_FAILED',
      `store: cannot read the cached key set ${path}: ${(err as Error).message}`,
    );
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw damagedCache(path, 'not valid JSON');
  }
  const c = v as Partial<KeyCache> | null;
  if (typeof c !== 'object' || c === null || c.version !== 1) throw damagedCache(path, 'unknown format');
  if (!isPort(c.port) || typeof c.savedAt !== 'number' || !Array.isArray(c.keys))
    throw damagedCache(path, 'fields missing');
  for (const k of c.keys as unknown[]) {
    const r = k as Partial<CachedKey> | null;
    if (
      typeof r !== 'object' ||
      r === null ||
      typeof r.id !== 'string' ||
      typeof r.method !== 'string' ||
      typeof r.secret !== 'string' ||
      !isPort(r.port) ||
      limitProblem('deviceLimit', r.deviceLimit) !== undefined ||
      limitProblem('speedLimit', r.speedLimit) !== undefined
    )
      throw damagedCache(path, 'a key entry is malformed');
  }
  return c as KeyCache;
}
