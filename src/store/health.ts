import { silentLogger, type Logger } from '../shared/logger.js';
import { StoreError } from './types.js';

/** Error codes of a PostgreSQL server that is not there (socket) or going away (SQLSTATE 57P0x, 08xxx). */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
]);
const UNAVAILABLE_TEXT =
  /connection terminated|timeout exceeded when trying to connect|connection error|query read timeout|not queryable/i;

/** True when `err` says the store's database cannot be reached (as opposed to a bad request). */
export function isStoreUnavailable(err: unknown): boolean {
  if (err instanceof StoreError) return err.code === 'STORE_UNAVAILABLE';
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return true;
  const errors = (err as { errors?: unknown }).errors; // AggregateError (IPv4 + IPv6 refused)
  if (Array.isArray(errors) && errors.some(isStoreUnavailable)) return true;
  return err instanceof Error && UNAVAILABLE_TEXT.test(err.message);
}

/** A short reason for a log line: the error code, else the first line (no connection string in either). */
function reason(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') return code;
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 120);
}

/**
 * Whether the store's database answers, as the connection pool sees it: every connection attempt
 * reports here. An outage is logged once when it starts and once when it ends, not per retry.
 */
export class StoreHealth {
  readonly #log: Logger;
  readonly #now: () => number;
  #downSince: number | undefined;
  #everUp = false;

  constructor(log: Logger = silentLogger, now: () => number = Date.now) {
    this.#log = log;
    this.#now = now;
  }

  get available(): boolean {
    return this.#downSince === undefined;
  }

  /**
   * An outage starts. Logged only when the store answered before: a store that never answered
   * since this start is the caller's to report (the open fails, or a node starts from its cache).
   */
  down(err: unknown): void {
    if (this.#downSince !== undefined || !isStoreUnavailable(err)) return;
    this.#downSince = this.#now();
    if (!this.#everUp) return;
    this.#log.warn(
      { reason: reason(err) },
      'store unreachable: serving the keys already known, counting usage in memory until it is back',
    );
  }

  up(): void {
    this.#everUp = true;
    if (this.#downSince === undefined) return;
    const seconds = Math.round((this.#now() - this.#downSince) / 1000);
    this.#downSince = undefined;
    this.#log.info({ downSeconds: seconds }, 'store reachable again: writing the usage counted meanwhile');
  }
}
