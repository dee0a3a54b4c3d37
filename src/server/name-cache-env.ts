/**
 * The name cache's setting from the environment, apart from names.ts so the CLI can check it at
 * start without loading the resolver (node:dns) into a main thread that never dials.
 */
import { availableParallelism } from 'node:os';

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
/**
 * The process's LookupGate memory, made on first use: row 0 is the main thread's (every name
 * cache there: an in-process plane, the web front's server), then lookupRowsFor's rows for the
 * data-plane workers, so every lookup of the process counts against one limit.
 */
let processMemory: SharedArrayBuffer | undefined;
let rowsTaken = 1;

/**
 * The process's LookupGate memory (row 0: this, the main thread's); made here, it has rooms for
 * a pool of the default size (a worker per core) too.
 */
export function processLookupGate(): SharedArrayBuffer {
  return (processMemory ??= lookupGateBuffer(1 + availableParallelism()));
}

/**
 * Rows for `n` data-plane workers beside the main thread's row: the process's memory when it is
 * made for them here (the pool starts before any name cache of the main thread) or still has
 * the room, else a memory of their own (a second pool in one process: tests).
 */
export function lookupRowsFor(n: number): { memory: SharedArrayBuffer; first: number } {
  processMemory ??= lookupGateBuffer(1 + n);
  if (rowsTaken + n <= processMemory.byteLength / (LOOKUP_GATE_ROW * 4)) {
    rowsTaken += n;
    return { memory: processMemory, first: rowsTaken - n };
  }
  return { memory: lookupGateBuffer(n), first: 0 };
}

/** Zero worker `row`'s counters before it starts (again): what a dead worker held is free. */
export function clearLookupRow(memory: SharedArrayBuffer, row: number): void {
  new Int32Array(memory, row * LOOKUP_GATE_ROW * 4, LOOKUP_GATE_ROW).fill(0);
}
