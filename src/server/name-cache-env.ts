/**
 * The name cache's setting from the environment, apart from names.ts so the CLI can check it at
 * start without loading the resolver (node:dns) into a main thread that never dials.
 */

/** How long an answer is kept by default, ms (getaddrinfo gives no TTL). */
export const NAME_CACHE_MS = 10_000;
/**
 * LADDER_DNS_CACHE_MS: how long an answer is kept, whole ms (0: not kept); NAME_CACHE_MS when
 * unset. Anything else is a clear error.
 */
export function nameCacheMsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.LADDER_DNS_CACHE_MS;
  if (v === undefined || v === '') return NAME_CACHE_MS;
  if (!/^\d{1,9}$/.test(v))
    throw new RangeError(
      `LADDER_DNS_CACHE_MS: expected whole milliseconds (0 turns the cache off), got "${v}"`,
    );
  return Number(v);
}

/** Keys' counters in a LookupGate's shared table (name-lookups.ts); two keys may share one. */
export const LOOKUP_GATE_KEYS = 64;
/** Int32 counters in one worker's row of a LookupGate's memory: lookups running, then per key. */
export const LOOKUP_GATE_ROW = 1 + LOOKUP_GATE_KEYS;
/**
 * The memory of a process's LookupGate (name-lookups.ts): one row of counters per data-plane
 * worker. Here so the pool's main thread makes it without loading the resolver.
 */
export function lookupGateBuffer(workers = 1): SharedArrayBuffer {
  return new SharedArrayBuffer(workers * LOOKUP_GATE_ROW * 4);
}
/** Zero worker `row`'s counters before it starts (again): what a dead worker held is free. */
export function clearLookupRow(memory: SharedArrayBuffer, row: number): void {
  new Int32Array(memory, row * LOOKUP_GATE_ROW * 4, LOOKUP_GATE_ROW).fill(0);
}
