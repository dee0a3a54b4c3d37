/** Row mapping shared by the Kysely store: database values (SQLite or PostgreSQL types) to records. */
import type { KeysTable } from './schema.js';
import { LIMIT_PERIODS, type KeyPage, type KeyRecord, type LimitPeriod } from './types.js';

export function num(v: unknown): number {
  return typeof v === 'number' ? v : Number(v);
}
export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : num(v);
}
function toPeriod(v: string): LimitPeriod {
  return (LIMIT_PERIODS as readonly string[]).includes(v) ? (v as LimitPeriod) : 'rolling30d';
}

export function rowToKey(r: KeysTable): KeyRecord {
  return {
    id: r.id,
    name: r.name,
    method: r.method,
    secret: r.secret,
    port: num(r.port),
    dataLimitBytes: numOrNull(r.data_limit_bytes),
    limitPeriod: toPeriod(r.limit_period),
    expiresAt: numOrNull(r.expires_at),
    enabled: num(r.enabled) !== 0,
    accessToken: r.access_token,
    createdAt: num(r.created_at),
    lastSeenAt: numOrNull(r.last_seen_at),
    prefix: r.prefix ?? 'auto',
  };
}

/** A page of key rows read with `limit`: a cursor after the last when the page is full. */
export function keyPage(rows: readonly KeysTable[], limit: number): KeyPage {
  const last = rows.at(-1);
  return {
    keys: rows.map(rowToKey),
    next: rows.length === limit && last ? { seq: num(last.seq), id: last.id } : undefined,
  };
}

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** SQLite caps bound parameters per statement; stay well under it. */
export const IN_CHUNK = 400;
