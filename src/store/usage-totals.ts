import { sql, type Kysely } from 'kysely';
import type { Clock } from '../shared/clock.js';
import { num } from './rows.js';
import type { Database } from './schema.js';
import type { UsageTotals } from './types.js';
import { HOUR_MS, type PendingUsage } from './usage-writer.js';

type Db = Kysely<Database>;
type ReadFn = <R>(query: {
  compile(): { sql: string; parameters: readonly unknown[] };
  execute(): Promise<R[]>;
}) => Promise<R[]>;

/**
 * How far back a delta read looks before the previous read's mark: longer than any usage
 * transaction can stay open between stamping its rows (clock_timestamp()) and committing, so a
 * row committed late is still read. Rows read twice are harmless: a delta sets absolute values.
 */
export const DELTA_MARGIN_MS = 120_000;

/**
 * Most delta reads look back only this far before the previous read's mark: a flush commits within
 * milliseconds of stamping its rows unless it waits on locks (2 s lock_timeout per lock). Re-reading
 * the whole DELTA_MARGIN_MS at every poll (every 2 s) read each changed row some 60 times over, for
 * every node: fleet-wide, what grew with the fleet (docs/fleet.md "usage re-reads").
 */
export const NARROW_MARGIN_MS = 5_000;

/**
 * How often (this store's clock) a delta read looks back DELTA_MARGIN_MS before the previous
 * *wide* read's mark instead: a row that commits up to DELTA_MARGIN_MS after its stamp is counted
 * at the first wide read after its commit, as every read counted it before.
 */
export const WIDE_READ_MS = 60_000;

interface Window {
  totals: Map<string, UsageTotals>;
  /** PostgreSQL: the (key, hour) values behind `totals` for hours >= trackFrom. */
  known: Map<string, UsageTotals>;
  trackFrom: number;
  /** PostgreSQL: database time of the last read; the next reads rows changed since mark - margin. */
  mark: number;
  /** PostgreSQL: database time of the last full or wide read, and this store's clock then. */
  wideMark: number;
  wideAt: number;
  at: number;
  usedAt: number;
}

/**
 * Per-window usage totals (key -> bytes since a window start), so evaluating limits every few
 * seconds costs no scan of the window. Recomputed in full every `ttlMs`; between full reads:
 * - SQLite (one writer, this process): advanced by this store's own commits.
 * - PostgreSQL (every node writes): advanced by reading only the usage rows changed since the last
 *   read (usage.changed_at, the database's clock; NARROW_MARGIN_MS before it, and DELTA_MARGIN_MS
 *   before the last wide read's every WIDE_READ_MS), replacing each (key, hour) value it knew. A
 *   changed row older than the tracked hours (a node flushing after a long outage) forces a full read.
 * Either way the totals equal a full sum over the table as of the read (test/store/usage-fleet).
 */
export class UsageTotalsCache {
  readonly #db: Db;
  readonly #dialect: 'sqlite' | 'postgres';
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #read: ReadFn;
  #windows = new Map<number, Window>();
  /** Usage rows the delta reads returned, and how many reads were wide (tests, benches). */
  readonly deltaReads = { rows: 0, narrow: 0, wide: 0 };

  constructor(opts: { db: Db; dialect: 'sqlite' | 'postgres'; clock: Clock; ttlMs: number; read: ReadFn }) {
    this.#db = opts.db;
    this.#dialect = opts.dialect;
    this.#clock = opts.clock;
    this.#ttlMs = opts.ttlMs;
    this.#read = opts.read;
  }

  /** Totals of buckets >= from (hour-aligned). Call with no flush running (Store.usageSince does). */
  async since(from: number): Promise<Map<string, UsageTotals>> {
    const now = this.#clock.now();
    let w = this.#windows.get(from);
    if (w && now - w.at < this.#ttlMs && this.#dialect === 'postgres') {
      if (!(await this.#advance(w, from))) w = undefined; // an old hour changed: read in full
    }
    if (!w || now - w.at >= this.#ttlMs) {
      w = await this.#load(from, now);
      this.#windows.set(from, w);
      // Windows move (hourly for the rolling one): forget those nobody asked for in an hour.
      for (const [f, e] of this.#windows) if (now - e.usedAt > HOUR_MS) this.#windows.delete(f);
    }
    w.usedAt = now;
    return new Map([...w.totals].map(([k, v]) => [k, { ...v }]));
  }

  /** This store's committed batch (SQLite: the only writer; PostgreSQL reads it back as a delta). */
  committed(applied: readonly PendingUsage[]): void {
    if (this.#dialect === 'postgres') return;
    for (const [from, w] of this.#windows) {
      for (const b of applied) {
        if (b.bucket < from) continue;
        const t = w.totals.get(b.keyId);
        if (t) {
          t.up += b.up;
          t.down += b.down;
        } else w.totals.set(b.keyId, { up: b.up, down: b.down });
      }
    }
  }

  forget(keyId: string): void {
    for (const w of this.#windows.values()) {
      w.totals.delete(keyId);
      for (const k of w.known.keys()) if (k.startsWith(`${keyId}\u0000`)) w.known.delete(k);
    }
  }

  async #load(from: number, now: number): Promise<Window> {
    const sums = (db: Db) =>
      db
        .selectFrom('usage')
        .select((eb) => [
          'key_id',
          eb.fn.sum<number>('up_bytes').as('up'),
          eb.fn.sum<number>('down_bytes').as('down'),
        ])
        .where('bucket', '>=', from)
        .groupBy('key_id');
    const totalsOf = (rows: { key_id: string; up: number; down: number }[]): Map<string, UsageTotals> =>
      new Map(rows.map((r) => [r.key_id, { up: num(r.up), down: num(r.down) }]));
    if (this.#dialect === 'sqlite') {
      const totals = totalsOf(await this.#read(sums(this.#db)));
      return {
        totals,
        known: new Map(),
        trackFrom: 0,
        mark: 0,
        wideMark: 0,
        wideAt: now,
        at: now,
        usedAt: now,
      };
    }
    // One snapshot for the mark, the sums and the recent rows, so they agree with each other.
    const trackFrom = Math.max(from, Math.floor(now / HOUR_MS) * HOUR_MS - HOUR_MS);
    return this.#db
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute(async (trx) => {
        const mark = await dbNow(trx);
        const totals = totalsOf(await sums(trx).execute());
        const known = new Map<string, UsageTotals>();
        const rows = await trx
          .selectFrom('usage')
          .select(['key_id', 'bucket', 'up_bytes', 'down_bytes'])
          .where('bucket', '>=', trackFrom)
          .execute();
        for (const r of rows)
          known.set(`${r.key_id}\u0000${num(r.bucket)}`, { up: num(r.up_bytes), down: num(r.down_bytes) });
        return { totals, known, trackFrom, mark, wideMark: mark, wideAt: now, at: now, usedAt: now };
      });
  }

  /** Apply the rows changed since the last read; false when a full read is needed instead. */
  async #advance(w: Window, from: number): Promise<boolean> {
    const now = this.#clock.now();
    const wide = now - w.wideAt >= WIDE_READ_MS;
    const after = wide ? w.wideMark - DELTA_MARGIN_MS : w.mark - NARROW_MARGIN_MS;
    const { mark, rows } = await this.#db
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute(async (trx) => ({
        mark: await dbNow(trx),
        rows: await trx
          .selectFrom('usage')
          .select(['key_id', 'bucket', 'up_bytes', 'down_bytes'])
          .where('changed_at', '>=', after)
          .where('bucket', '>=', from)
          .execute(),
      }));
    this.deltaReads.rows += rows.length;
    this.deltaReads[wide ? 'wide' : 'narrow']++;
    for (const r of rows) {
      const bucket = num(r.bucket);
      if (bucket < w.trackFrom) return false;
      const k = `${r.key_id}\u0000${bucket}`;
      const now = { up: num(r.up_bytes), down: num(r.down_bytes) };
      const old = w.known.get(k) ?? { up: 0, down: 0 };
      const t = w.totals.get(r.key_id) ?? { up: 0, down: 0 };
      t.up += now.up - old.up;
      t.down += now.down - old.down;
      w.totals.set(r.key_id, t);
      w.known.set(k, now);
    }
    w.mark = mark;
    if (wide) {
      w.wideMark = mark;
      w.wideAt = now;
    }
    return true;
  }
}

async function dbNow(trx: Db): Promise<number> {
  const r = await sql<{
    ms: string | number;
  }>`select (extract(epoch from clock_timestamp()) * 1000)::bigint as ms`.execute(trx);
  return num(r.rows[0]!.ms);
}
