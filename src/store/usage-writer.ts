import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { isStoreUnavailable, type StoreHealth } from './health.js';
import { byteOrder, chunks, IN_CHUNK, num } from './rows.js';
import type { Database } from './schema.js';

export const HOUR_MS = 3_600_000;
type Db = Kysely<Database>;

/** Bytes of one key in one hour bucket, counted here and not yet committed. */
export interface PendingUsage {
  keyId: string;
  bucket: number;
  up: number;
  down: number;
  last: number;
}

/** Fault-injection seams for tests (never set in production). */
export interface UsageWriterTesting {
  /** Called after a batch committed, before the writer learns it did: throwing = a lost ack. */
  afterCommit?: (seq: number) => void;
  /** Negative control: a retried batch gets a new sequence number (what a writer without them does). */
  newSeqOnRetry?: boolean;
}

export interface UsageWriterDeps {
  tx: <T>(fn: (trx: Db) => Promise<T>) => Promise<T>;
  dialect: 'sqlite' | 'postgres';
  clock: Clock;
  log: Logger;
  health: StoreHealth;
  /** This writer's name in usage_batches (the node name, or an id kept in the data directory). */
  writerId: string;
  flushBatchEntries: number;
  testing?: UsageWriterTesting;
  /** The entries a batch added, after its commit (not called for a replayed batch). */
  onCommitted: (applied: readonly PendingUsage[]) => void;
}

/** Batch rows older than this belong to runs long gone (a live run rewrites its row every flush). */
const BATCH_ROW_TTL_MS = 30 * 24 * HOUR_MS;
/**
 * PostgreSQL: a flush waits at most this long for a row another transaction holds (another node's
 * flush of the same key, a key change), then fails and is retried whole at the next flush (same
 * seq: nothing counted twice). Unbounded, flushes queued behind each other for minutes and every
 * key evaluation, which reads usage after the flush, with them (issue 16's scale bench).
 */
export const FLUSH_LOCK_TIMEOUT_MS = 2000;
/** "usage flush failed" is logged at most once per this period (a contended flush fails often). */
const FLUSH_WARN_MS = 60_000;

/**
 * Usage on its way to the database. Bytes are summed in memory per (key, hour) and written in
 * batches, each numbered (writer, run, seq): the batch's row and its increments commit in one
 * transaction, and a batch whose seq the writer run already committed is a no-op, so a retry after
 * a lost acknowledgement never counts twice. Batches commit strictly in order: a failed batch is
 * retried as it was (same seq, same entries) before the next is cut, so one row per writer run
 * (its last seq) is enough.
 *
 * While the database is unreachable nothing is dropped: the batch in flight stays, and new bytes
 * keep summing in `pending`, so memory is one entry per (key, hour) with traffic during the outage
 * plus that one batch.
 */
export class UsageWriter {
  readonly #d: UsageWriterDeps;
  readonly #run = randomUUID();
  #seq = 0;
  #pending = new Map<string, PendingUsage>();
  #inflight: { seq: number; entries: PendingUsage[] } | undefined;
  #flushing: Promise<void> = Promise.resolve();
  #pruned = false;
  #warnedAt = -Infinity;
  #failedSinceWarn = 0;
  closed = false;

  constructor(deps: UsageWriterDeps) {
    this.#d = deps;
  }

  /** (key, hour) entries not yet committed: pending plus the batch in flight. */
  get uncommittedEntries(): number {
    return this.#pending.size + (this.#inflight?.entries.length ?? 0);
  }

  add(keyId: string, up: number, down: number): void {
    if (this.closed || (up <= 0 && down <= 0)) return;
    const now = this.#d.clock.now();
    const bucket = Math.floor(now / HOUR_MS) * HOUR_MS;
    const k = `${keyId}\u0000${bucket}`;
    const p = this.#pending.get(k);
    if (p) {
      p.up += Math.max(0, up);
      p.down += Math.max(0, down);
      p.last = now;
      return;
    }
    this.#pending.set(k, { keyId, bucket, up: Math.max(0, up), down: Math.max(0, down), last: now });
    // Early flush of a big batch; not while the database is away (the timer retries).
    if (this.#pending.size >= this.#d.flushBatchEntries && this.#d.health.available)
      void this.flush().catch(() => undefined);
  }

  /** A deleted key's uncommitted bytes go with it. */
  forget(keyId: string): void {
    for (const [k, p] of this.#pending) if (p.keyId === keyId) this.#pending.delete(k);
  }

  flush(): Promise<void> {
    const run = this.#flushing.then(() => this.#flushNow());
    this.#flushing = run.catch(() => undefined);
    return run;
  }

  /** Run `fn` after pending usage is flushed (a failed flush keeps its bytes), no flush meanwhile. */
  afterFlush<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#flushing.then(async () => {
      await this.#flushNow().catch(() => undefined);
      return fn();
    });
    this.#flushing = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #flushNow(): Promise<void> {
    if (!this.#inflight) {
      if (this.#pending.size === 0) return;
      this.#inflight = { seq: ++this.#seq, entries: [...this.#pending.values()] };
      this.#pending = new Map();
    }
    const batch = this.#inflight;
    let applied: PendingUsage[] | undefined;
    try {
      applied = await this.#d.tx((trx) => this.#apply(trx, batch.seq, batch.entries));
      this.#d.testing?.afterCommit?.(batch.seq);
    } catch (err) {
      // The batch stays in flight, as it is: the next flush retries it with the same seq.
      if (this.#d.testing?.newSeqOnRetry) batch.seq = ++this.#seq;
      if (isStoreUnavailable(err)) this.#d.health.down(err);
      else if (!this.closed) this.#warn(err);
      throw err;
    }
    this.#inflight = undefined;
    this.#d.health.up();
    if (applied.length > 0) this.#d.onCommitted(applied);
  }

  /** A failed flush (kept, retried): one line a minute, with how many failed meanwhile. */
  #warn(err: unknown): void {
    this.#failedSinceWarn++;
    const now = this.#d.clock.now();
    if (now - this.#warnedAt < FLUSH_WARN_MS) return;
    this.#d.log.warn(
      { err: err instanceof Error ? err.message : String(err), failed: this.#failedSinceWarn },
      'usage flush failed; the batch is kept and retried',
    );
    this.#warnedAt = now;
    this.#failedSinceWarn = 0;
  }

  /** One batch in the caller's transaction; returns the entries added ([] for a replayed batch). */
  async #apply(trx: Db, seq: number, entries: readonly PendingUsage[]): Promise<PendingUsage[]> {
    const now = this.#d.clock.now();
    if (this.#d.dialect === 'postgres')
      await sql`select set_config('lock_timeout', ${String(FLUSH_LOCK_TIMEOUT_MS)}, true)`.execute(trx);
    // Every writer locks rows in one order (key id, then hour): flushes of the same keys from
    // several nodes queue behind each other instead of deadlocking (PostgreSQL breaks a deadlock
    // only after deadlock_timeout, by failing one of them).
    const batch = [...entries].sort((a, b) => byteOrder(a.keyId, b.keyId) || a.bucket - b.bucket);
    const claim = await trx
      .insertInto('usage_batches')
      .values({ writer: this.#d.writerId, run: this.#run, seq, committed_at: now })
      .onConflict((oc) =>
        oc
          .columns(['writer', 'run'])
          .doUpdateSet({ seq, committed_at: now })
          .where('usage_batches.seq', '<', seq),
      )
      .executeTakeFirst();
    if (num(claim.numInsertedOrUpdatedRows ?? 0) === 0) return []; // committed before: a replay
    if (!this.#pruned) {
      this.#pruned = true;
      await trx
        .deleteFrom('usage_batches')
        .where('committed_at', '<', now - BATCH_ROW_TTL_MS)
        .execute();
    }
    const ids = [...new Set(batch.map((b) => b.keyId))];
    const existing = new Set<string>();
    for (const part of chunks(ids, IN_CHUNK)) {
      const q = trx.selectFrom('keys').select('id').where('id', 'in', part);
      // PostgreSQL: the key rows the last-seen updates below change, locked now in the ids' order
      // (byte order, as `ids` is sorted; locked after the sort). Those updates go by time, not by
      // id: two nodes whose flushes share keys but not usage rows (an hour apart) deadlocked.
      const rows = await (
        this.#d.dialect === 'postgres' ? q.orderBy(sql`id collate "C"`).forNoKeyUpdate() : q
      ).execute();
      for (const r of rows) existing.add(r.id);
    }
    // On PostgreSQL the change time is the database's clock, the same for every node, so a node
    // reading "rows changed since T" (UsageTotals) needs no agreement between node clocks.
    const changedAt =
      this.#d.dialect === 'postgres'
        ? sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint`
        : sql<number>`${now}`;
    // Multi-row upserts: one statement per 100 (key, hour) entries, not one per entry, so a
    // flush of thousands of active keys holds the (synchronous) SQLite connection briefly.
    const live = batch.filter((b) => existing.has(b.keyId)); // deleted keys: usage goes with them
    for (const part of chunks(live, 100)) {
      await trx
        .insertInto('usage')
        .values(
          part.map((b) => ({
            key_id: b.keyId,
            bucket: b.bucket,
            up_bytes: b.up,
            down_bytes: b.down,
            changed_at: changedAt,
          })),
        )
        .onConflict((oc) =>
          oc.columns(['key_id', 'bucket']).doUpdateSet({
            up_bytes: sql<number>`usage.up_bytes + excluded.up_bytes`,
            down_bytes: sql<number>`usage.down_bytes + excluded.down_bytes`,
            changed_at: sql<number>`excluded.changed_at`,
          }),
        )
        .execute();
    }
    const lastSeen = new Map<string, number>();
    for (const b of live) lastSeen.set(b.keyId, Math.max(lastSeen.get(b.keyId) ?? 0, b.last));
    // Last-seen is kept to flush precision: one update per distinct time, usually one per flush.
    const byTime = new Map<number, string[]>();
    for (const [id, at] of lastSeen) byTime.set(at, [...(byTime.get(at) ?? []), id]);
    for (const [at, ids2] of byTime) {
      ids2.sort(byteOrder);
      for (const part of chunks(ids2, IN_CHUNK)) {
        await trx
          .updateTable('keys')
          .set({ last_seen_at: at })
          .where('id', 'in', part)
          .where((eb) => eb.or([eb('last_seen_at', 'is', null), eb('last_seen_at', '<', at)]))
          .execute();
      }
    }
    return live;
  }
}
