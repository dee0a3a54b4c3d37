/** How a KyselyStore is opened (kysely-store.ts re-exports it). */
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { UsageWriterTesting } from './usage-writer.js';

export interface StoreOptions {
  clock?: Clock;
  logger?: Logger;
  /** How often buffered usage is written, when there is some (default 500 ms: a crash loses ≤ 1 s). */
  flushIntervalMs?: number;
  /** Flush early once this many (key, hour) entries are buffered (default 1000). */
  flushBatchEntries?: number;
  /**
   * Per-window usage totals are kept in memory, so evaluating limits every few seconds costs no
   * scan of the window (usage-totals.ts: on PostgreSQL each read adds only the rows other nodes
   * changed). They are recomputed in full after this long (default 5 min).
   */
  usageCacheTtlMs?: number;
  /** Values used only when the settings are first created. */
  defaults?: { hostname?: string; port?: number; name?: string };
  /**
   * This process's name as a usage writer (usage_batches.writer): the node name in a fleet, else
   * an id kept in the data directory. Default 'local'.
   */
  writerId?: string;
  /**
   * PostgreSQL unreachable at open: return a store that keeps trying in the background (every
   * `retryMs`, default 1 s) instead of failing; until it connects (`ready`), its methods throw
   * STORE_UNAVAILABLE and usage is counted in memory. For a node that serves cached keys.
   */
  allowOffline?: boolean;
  retryMs?: number;
  /**
   * PostgreSQL: connections the store's pool opens at most (default 3: a fleet node's evaluations,
   * usage flushes and gauges make one store call each at a time; LADDER_STORE_POOL for `ladder
   * server`), and how long a call waits for one when all are busy before it fails (default 30 s).
   */
  poolSize?: number;
  acquireTimeoutMs?: number;
  /** Fault-injection seams for tests. */
  testing?: UsageWriterTesting;
}
