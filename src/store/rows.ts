/** Row mapping shared by the Kysely store: database values (SQLite or PostgreSQL types) to records. */
import { sql, type Kysely } from 'kysely';
import { limitProblem, storedLimit, type LimitField } from './key-limits.js';
import type { Database, KeysTable, UsageTable } from './schema.js';
import {
  LIMIT_PERIODS,
  StoreError,
  type KeyPage,
  type KeyPatch,
  type KeyRecord,
  type KeyWriteCheck,
  type LimitPeriod,
  type UsageBucket,
} from './types.js';

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
    deviceLimit: storedLimit('deviceLimit', r.device_limit),
    speedLimit: storedLimit('speedLimit', r.speed_limit),
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

/** The columns a KeyPatch sets (an empty object when it sets nothing). */
export function patchColumns(patch: KeyPatch): Partial<KeysTable> {
  const set: Partial<KeysTable> = {};
  if (patch.name !== undefined) set.name = patch.name;
  if (patch.method !== undefined) set.method = patch.method;
  if (patch.secret !== undefined) set.secret = patch.secret;
  if (patch.port !== undefined) set.port = patch.port;
  if (patch.dataLimitBytes !== undefined) set.data_limit_bytes = patch.dataLimitBytes;
  if (patch.limitPeriod !== undefined) set.limit_period = patch.limitPeriod;
  if (patch.expiresAt !== undefined) set.expires_at = patch.expiresAt;
  if (patch.enabled !== undefined) set.enabled = patch.enabled ? 1 : 0;
  if (patch.prefix !== undefined) set.prefix = patch.prefix;
  if (patch.deviceLimit !== undefined) set.device_limit = checkedLimit('deviceLimit', patch.deviceLimit);
  if (patch.speedLimit !== undefined) set.speed_limit = checkedLimit('speedLimit', patch.speedLimit);
  return set;
}

/** A limit a write stores (null: none); nonsense is refused before it reaches the database. */
export function checkedLimit(field: LimitField, value: number | null | undefined): number | null {
  const problem = limitProblem(field, value);
  if (problem !== undefined)
    throw new StoreError('INVALID_LIMIT', `store: ${field} ${problem}, got ${String(value)}`);
  return value ?? null;
}

/** Keys that get the same columns, grouped (one UPDATE per group); patches that set nothing left out. */
export function patchGroups(
  keys: readonly KeyRecord[],
  patch: (key: KeyRecord) => KeyPatch,
): { set: Partial<KeysTable>; ids: string[] }[] {
  const groups = new Map<string, { set: Partial<KeysTable>; ids: string[] }>();
  for (const key of keys) {
    const set = patchColumns(patch(key));
    if (Object.keys(set).length === 0) continue;
    const id = JSON.stringify(set);
    const g = groups.get(id) ?? { set, ids: [] };
    groups.set(id, g);
    g.ids.push(key.id);
  }
  return [...groups.values()];
}

/** Key ids in PostgreSQL's `collate "C"` order (UTF-8 bytes): the one order every writer locks in. */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** A usage row as a bucket (the row's bigints as numbers). */
export function rowToBucket(r: UsageTable): UsageBucket {
  return { keyId: r.key_id, bucket: num(r.bucket), up: num(r.up_bytes), down: num(r.down_bytes) };
}

/** pg_advisory_xact_lock key for "a key write with a check is under way" ("ladder:key-check"). */
const KEY_CHECK_LOCK = 0x1add3f;

/**
 * Run `c` in a key write's transaction, before the write: on PostgreSQL after taking the lock
 * that serializes checked writes (first thing, holding nothing else: no lock cycle with the
 * writers that take none); SQLite's BEGIN IMMEDIATE already serializes every writer.
 */
export async function runKeyCheck(trx: Kysely<Database>, postgres: boolean, c: KeyWriteCheck): Promise<void> {
  if (postgres) await sql`select pg_advisory_xact_lock(${sql.raw(String(KEY_CHECK_LOCK))})`.execute(trx);
  const rows = await trx.selectFrom('keys').selectAll().where('method', '=', c.method).execute();
  c.check(rows.map(rowToKey));
}

/**
 * The keys of `ids` that exist (read in `trx`, a transaction) and the ids that do not. With `lock`
 * (PostgreSQL: its transactions are READ COMMITTED) the rows are locked until the commit, so a
 * change computed from them (an extension counted from the current expiry) cannot lose a
 * concurrent one, and a key another node deletes meanwhile is missing rather than counted.
 * SQLite's writers are serialized by BEGIN IMMEDIATE already.
 */
export async function readKeys(
  trx: Kysely<Database>,
  ids: readonly string[],
  lock = false,
): Promise<{ keys: KeyRecord[]; missing: string[] }> {
  const keys: KeyRecord[] = [];
  // Locking (PostgreSQL): every writer takes key rows in one order — the ids sorted, each chunk
  // locked after an ORDER BY in byte order, as the usage flush does — so two nodes' bulk changes
  // of overlapping keys queue instead of deadlocking (without the ORDER BY the rows are locked in
  // scan order, which differs between two snapshots once updates have moved row versions).
  const unique = [...new Set(ids)];
  if (lock) unique.sort(byteOrder);
  for (const part of chunks(unique, IN_CHUNK)) {
    const q = trx.selectFrom('keys').selectAll().where('id', 'in', part);
    const rows = await (lock ? q.orderBy(sql`id collate "C"`).forUpdate() : q).execute();
    for (const row of rows) keys.push(rowToKey(row));
  }
  const found = new Set(keys.map((k) => k.id));
  return { keys, missing: [...new Set(ids)].filter((id) => !found.has(id)) };
}
