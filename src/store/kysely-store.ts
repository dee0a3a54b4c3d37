import { randomBytes, randomUUID } from 'node:crypto';
import { Kysely, Migrator, sql, type Transaction } from 'kysely';
import { systemClock, type Clock, type Timer } from '../shared/clock.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { createDialect, type StoreLocation } from './dialect.js';
import { ensureMarker, openFailure } from './integrity.js';
import { checkTables, migrationProvider } from './migrations.js';
import { chunks, IN_CHUNK, num, numOrNull, rowToKey } from './rows.js';
import { NodeRegistry } from './nodes.js';
import { SqliteReader } from './sqlite-reader.js';
import type { Database, KeysTable } from './schema.js';
import {
  StoreError,
  type KeyPatch,
  type KeyRecord,
  type NewKey,
  type ServerSettings,
  type SettingsPatch,
  type Store,
  type UsageBucket,
  type UsageTotals,
} from './types.js';

export const HOUR_MS = 3_600_000;

export interface StoreOptions {
  clock?: Clock;
  logger?: Logger;
  /** How often buffered usage is written, when there is some (default 500 ms: a crash loses ≤ 1 s). */
  flushIntervalMs?: number;
  /** Flush early once this many (key, hour) entries are buffered (default 1000). */
  flushBatchEntries?: number;
  /**
   * Per-window usage totals are kept in memory and advanced by every flush, so evaluating limits
   * every few seconds costs no database scan. Entries are recomputed from the database after this
   * long (default 5 min on SQLite, 30 s on PostgreSQL where other nodes add usage too).
   */
  usageCacheTtlMs?: number;
  /** Values used only when the settings are first created. */
  defaults?: { hostname?: string; port?: number; name?: string };
}

type Db = Kysely<Database>;

const SETTING_DEFAULTS = {
  name: 'Ladder Server',
  hostnameForAccessKeys: '127.0.0.1',
  metricsEnabled: false,
  accessKeyDataLimitBytes: null,
  dynamicKeyBaseUrl: null,
} as const;

interface Pending {
  keyId: string;
  bucket: number;
  up: number;
  down: number;
  last: number;
}

/** The Store on Kysely: SQLite through better-sqlite3 by default, PostgreSQL through pg. */
export class KyselyStore implements Store {
  readonly dialect: 'sqlite' | 'postgres';
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #flushIntervalMs: number;
  readonly #flushBatchEntries: number;
  #pending = new Map<string, Pending>();
  #flushTimer: Timer | undefined;
  #flushing: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #usageCacheTtlMs: number;
  /** Totals per key since `from` (hour-aligned), exact as of the last flush. */
  #usageCache = new Map<number, { totals: Map<string, UsageTotals>; at: number; usedAt: number }>();
  #reader: SqliteReader | undefined;

  private constructor(db: Db, dialect: 'sqlite' | 'postgres', opts: StoreOptions, sqlitePath?: string) {
    this.#db = db;
    this.dialect = dialect;
    this.#usageCacheTtlMs = opts.usageCacheTtlMs ?? (dialect === 'postgres' ? 30_000 : 300_000);
    if (sqlitePath !== undefined) {
      try {
        this.#reader = new SqliteReader(sqlitePath);
      } catch {
        this.#reader = undefined; // fall back to the main connection
      }
    }
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.logger ?? silentLogger;
    this.#flushIntervalMs = opts.flushIntervalMs ?? 500;
    this.#flushBatchEntries = opts.flushBatchEntries ?? 1000;
  }

  /** Open (creating if needed), run migrations, and make sure the server settings exist. */
  static async open(loc: StoreLocation, opts: StoreOptions = {}): Promise<KyselyStore> {
    const { kind, dialect } = createDialect(loc);
    const db = new Kysely<Database>({ dialect });
    let store: KyselyStore | undefined;
    try {
      const { error, results } = await new Migrator({ db, provider: migrationProvider }).migrateToLatest();
      if (error) {
        const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
        throw new StoreError(
          'STORE_OPEN_FAILED',
          `store: migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      // The reader thread opens the file read-only, so it starts after migrations created it.
      store = new KyselyStore(db, kind, opts, loc.kind === 'sqlite' ? loc.path : undefined);
      await store.#initSettings(opts.defaults ?? {});
      await checkTables(db); // a table dropped after its migration ran: refuse here, not with 500s later
      if (loc.kind === 'sqlite') ensureMarker(loc.path, await store.getSettings());
    } catch (err) {
      await store?.close().catch(() => undefined);
      await db.destroy().catch(() => undefined);
      throw openFailure(loc.kind === 'sqlite' ? loc.path : 'the PostgreSQL store', err);
    }
    store!.#scheduleFlush();
    return store!;
  }

  // ---- transactions -------------------------------------------------------------------------

  /**
   * Run `fn` in one write transaction. On SQLite it is `BEGIN IMMEDIATE`, so a second process
   * (the CLI next to a running server) waits on the busy timeout instead of failing mid-way.
   */
  async #tx<T>(fn: (trx: Db) => Promise<T>): Promise<T> {
    this.#assertOpen();
    if (this.dialect === 'postgres') {
      return this.#db.transaction().execute((trx: Transaction<Database>) => fn(trx));
    }
    return this.#db.connection().execute(async (conn) => {
      await sql`begin immediate`.execute(conn);
      try {
        const result = await fn(conn);
        await sql`commit`.execute(conn);
        return result;
      } catch (err) {
        await sql`rollback`.execute(conn).catch(() => undefined);
        throw err;
      }
    });
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreError('STORE_CLOSED', 'store: already closed');
  }

  // ---- settings -----------------------------------------------------------------------------

  async #initSettings(defaults: NonNullable<StoreOptions['defaults']>): Promise<void> {
    await this.#tx(async (trx) => {
      const rows = await trx.selectFrom('settings').select('name').execute();
      const have = new Set(rows.map((r) => r.name));
      const initial: Record<string, unknown> = {
        serverId: randomUUID(),
        createdTimestampMs: this.#clock.now(),
        name: defaults.name ?? SETTING_DEFAULTS.name,
        hostnameForAccessKeys: defaults.hostname ?? SETTING_DEFAULTS.hostnameForAccessKeys,
        portForNewAccessKeys: defaults.port ?? 1024 + Math.floor(Math.random() * (65535 - 1024)),
        metricsEnabled: SETTING_DEFAULTS.metricsEnabled,
        accessKeyDataLimitBytes: SETTING_DEFAULTS.accessKeyDataLimitBytes,
        apiPrefix: randomBytes(16).toString('base64url'),
        dynamicKeyBaseUrl: SETTING_DEFAULTS.dynamicKeyBaseUrl,
        apiPort: null,
        nextKeyId: 0,
      };
      const missing = Object.entries(initial).filter(([k]) => !have.has(k));
      if (missing.length > 0) {
        await trx
          .insertInto('settings')
          .values(missing.map(([name, value]) => ({ name, value: JSON.stringify(value) })))
          .execute();
      }
    });
  }

  async getSettings(): Promise<ServerSettings> {
    this.#assertOpen();
    const rows = await this.#db.selectFrom('settings').selectAll().execute();
    const m = new Map(rows.map((r) => [r.name, JSON.parse(r.value) as unknown]));
    return {
      serverId: String(m.get('serverId')),
      createdTimestampMs: num(m.get('createdTimestampMs')),
      name: String(m.get('name') ?? SETTING_DEFAULTS.name),
      hostnameForAccessKeys: String(m.get('hostnameForAccessKeys') ?? SETTING_DEFAULTS.hostnameForAccessKeys),
      portForNewAccessKeys: num(m.get('portForNewAccessKeys')),
      metricsEnabled: m.get('metricsEnabled') === true,
      accessKeyDataLimitBytes: numOrNull(m.get('accessKeyDataLimitBytes')),
      apiPrefix: String(m.get('apiPrefix')),
      apiPort: numOrNull(m.get('apiPort')),
      dynamicKeyBaseUrl: (m.get('dynamicKeyBaseUrl') as string | null | undefined) ?? null,
    };
  }

  async updateSettings(patch: SettingsPatch): Promise<ServerSettings> {
    const entries = Object.entries(patch).filter(([, v]) => v !== undefined);
    if (entries.length > 0) {
      await this.#tx(async (trx) => {
        for (const [name, value] of entries) {
          await trx
            .insertInto('settings')
            .values({ name, value: JSON.stringify(value) })
            .onConflict((oc) => oc.column('name').doUpdateSet({ value: JSON.stringify(value) }))
            .execute();
        }
      });
    }
    return this.getSettings();
  }

  async identityKey(method: string, generate: () => string): Promise<string> {
    this.#assertOpen();
    const name = `identityKey/${method}`;
    const have = await this.#db
      .selectFrom('settings')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirst();
    if (have) return String(JSON.parse(have.value));
    // Insert-if-absent, then read back: whoever inserted first wins, everyone gets that key.
    return this.#tx(async (trx) => {
      await trx
        .insertInto('settings')
        .values({ name, value: JSON.stringify(generate()) })
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
      const row = await trx
        .selectFrom('settings')
        .select('value')
        .where('name', '=', name)
        .executeTakeFirstOrThrow();
      return String(JSON.parse(row.value));
    });
  }

  // ---- keys ---------------------------------------------------------------------------------

  async listKeys(): Promise<KeyRecord[]> {
    this.#assertOpen();
    const rows = await this.#db.selectFrom('keys').selectAll().orderBy('seq').orderBy('id').execute();
    return rows.map(rowToKey);
  }

  async getKey(id: string): Promise<KeyRecord | undefined> {
    this.#assertOpen();
    const row = await this.#db.selectFrom('keys').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? rowToKey(row) : undefined;
  }

  async findKeyByToken(token: string): Promise<KeyRecord | undefined> {
    this.#assertOpen();
    const row = await this.#db
      .selectFrom('keys')
      .selectAll()
      .where('access_token', '=', token)
      .executeTakeFirst();
    return row ? rowToKey(row) : undefined;
  }

  async countKeys(): Promise<number> {
    this.#assertOpen();
    const r = await this.#db
      .selectFrom('keys')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    return num(r.n);
  }

  async createKey(input: NewKey): Promise<KeyRecord> {
    const [key] = await this.createKeys([input]);
    return key!;
  }

  async createKeys(inputs: readonly NewKey[]): Promise<KeyRecord[]> {
    if (inputs.length === 0) return [];
    const now = this.#clock.now();
    return this.#tx(async (trx) => {
      // Lock the id counter row first: concurrent creators (other connections of the pool, other
      // nodes sharing a PostgreSQL store) queue here. SQLite's BEGIN IMMEDIATE already serializes.
      const counterQuery = trx.selectFrom('settings').select('value').where('name', '=', 'nextKeyId');
      const counter = await (
        this.dialect === 'postgres' ? counterQuery.forUpdate() : counterQuery
      ).executeTakeFirst();
      const explicit = inputs.flatMap((i) => (i.id !== undefined ? [i.id] : []));
      if (new Set(explicit).size !== explicit.length) {
        throw new StoreError('KEY_EXISTS', 'store: the same key id appears twice in one request');
      }
      for (const part of chunks(explicit, IN_CHUNK)) {
        const taken = await trx.selectFrom('keys').select('id').where('id', 'in', part).executeTakeFirst();
        if (taken)
          throw new StoreError('KEY_EXISTS', `store: an access key with id "${taken.id}" already exists`);
      }
      let nextId = counter ? num(JSON.parse(counter.value)) : 0;
      const maxSeq = await trx
        .selectFrom('keys')
        .select((eb) => eb.fn.max('seq').as('m'))
        .executeTakeFirst();
      let seq = num(maxSeq?.m ?? 0);
      const reserved = new Set(explicit);
      const rows: KeysTable[] = [];
      for (const input of inputs) {
        let id = input.id;
        if (id === undefined) {
          for (let guard = 0; ; guard++) {
            const candidate = String(nextId++);
            if (reserved.has(candidate)) continue;
            const exists = await trx
              .selectFrom('keys')
              .select('id')
              .where('id', '=', candidate)
              .executeTakeFirst();
            if (!exists) {
              id = candidate;
              break;
            }
            if (guard > 1_000_000) throw new StoreError('KEY_EXISTS', 'store: no free key id');
          }
          reserved.add(id);
        }
        rows.push({
          id,
          name: input.name ?? '',
          method: input.method,
          secret: input.secret,
          port: input.port,
          data_limit_bytes: input.dataLimitBytes ?? null,
          limit_period: input.limitPeriod ?? 'rolling30d',
          expires_at: input.expiresAt ?? null,
          enabled: input.enabled === false ? 0 : 1,
          access_token: randomBytes(16).toString('base64url'),
          created_at: now,
          last_seen_at: null,
          seq: ++seq,
          prefix: input.prefix ?? 'auto',
        });
      }
      for (const part of chunks(rows, 50)) await trx.insertInto('keys').values(part).execute();
      await trx
        .insertInto('settings')
        .values({ name: 'nextKeyId', value: JSON.stringify(nextId) })
        .onConflict((oc) => oc.column('name').doUpdateSet({ value: JSON.stringify(nextId) }))
        .execute();
      return rows.map(rowToKey);
    });
  }

  async updateKey(id: string, patch: KeyPatch): Promise<KeyRecord | undefined> {
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
    return this.#tx(async (trx) => {
      if (Object.keys(set).length > 0) {
        const r = await trx.updateTable('keys').set(set).where('id', '=', id).executeTakeFirst();
        if (num(r.numUpdatedRows) === 0) return undefined;
      }
      const row = await trx.selectFrom('keys').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? rowToKey(row) : undefined;
    });
  }

  async deleteKey(id: string): Promise<boolean> {
    for (const [k, p] of this.#pending) if (p.keyId === id) this.#pending.delete(k);
    const deleted = await this.#tx(async (trx) => {
      const r = await trx.deleteFrom('keys').where('id', '=', id).executeTakeFirst();
      await trx.deleteFrom('usage').where('key_id', '=', id).execute();
      return num(r.numDeletedRows) > 0;
    });
    // After the commit, so a flush that slipped in before it cannot leave bytes behind.
    for (const e of this.#usageCache.values()) e.totals.delete(id);
    return deleted;
  }

  // ---- usage --------------------------------------------------------------------------------

  addBytes(keyId: string, up: number, down: number): void {
    if (this.#closed || (up <= 0 && down <= 0)) return;
    const now = this.#clock.now();
    const bucket = Math.floor(now / HOUR_MS) * HOUR_MS;
    const k = `${keyId}\u0000${bucket}`;
    const p = this.#pending.get(k);
    if (p) {
      p.up += Math.max(0, up);
      p.down += Math.max(0, down);
      p.last = now;
    } else {
      this.#pending.set(k, { keyId, bucket, up: Math.max(0, up), down: Math.max(0, down), last: now });
      if (this.#pending.size >= this.#flushBatchEntries) void this.flush().catch(() => undefined);
    }
  }

  #scheduleFlush(): void {
    if (this.#closed) return;
    const t = this.#clock.setTimeout(() => {
      this.flush()
        .catch(() => undefined)
        .finally(() => this.#scheduleFlush());
    }, this.#flushIntervalMs);
    t.unref?.();
    this.#flushTimer = t;
  }

  flush(): Promise<void> {
    const run = this.#flushing.then(() => this.#flushNow());
    this.#flushing = run.catch(() => undefined);
    return run;
  }

  async #flushNow(): Promise<void> {
    if (this.#pending.size === 0) return;
    const batch = [...this.#pending.values()];
    this.#pending = new Map();
    let applied: Pending[] = [];
    try {
      await this.#tx(async (trx) => {
        const ids = [...new Set(batch.map((b) => b.keyId))];
        const existing = new Set<string>();
        for (const part of chunks(ids, IN_CHUNK)) {
          for (const r of await trx.selectFrom('keys').select('id').where('id', 'in', part).execute())
            existing.add(r.id);
        }
        // Multi-row upserts: one statement per 100 (key, hour) entries, not one per entry, so a
        // flush of thousands of active keys holds the (synchronous) SQLite connection briefly.
        const live = batch.filter((b) => existing.has(b.keyId)); // deleted keys: usage goes with them
        for (const part of chunks(live, 100)) {
          await trx
            .insertInto('usage')
            .values(
              part.map((b) => ({ key_id: b.keyId, bucket: b.bucket, up_bytes: b.up, down_bytes: b.down })),
            )
            .onConflict((oc) =>
              oc.columns(['key_id', 'bucket']).doUpdateSet({
                up_bytes: sql<number>`usage.up_bytes + excluded.up_bytes`,
                down_bytes: sql<number>`usage.down_bytes + excluded.down_bytes`,
              }),
            )
            .execute();
        }
        const lastSeen = new Map<string, number>();
        for (const b of live) lastSeen.set(b.keyId, Math.max(lastSeen.get(b.keyId) ?? 0, b.last));
        // Last-seen is kept to flush precision: one update per distinct time, usually one per flush.
        const byTime = new Map<number, string[]>();
        for (const [id, at] of lastSeen) byTime.set(at, [...(byTime.get(at) ?? []), id]);
        for (const [at, ids] of byTime) {
          for (const part of chunks(ids, IN_CHUNK)) {
            await trx
              .updateTable('keys')
              .set({ last_seen_at: at })
              .where('id', 'in', part)
              .where((eb) => eb.or([eb('last_seen_at', 'is', null), eb('last_seen_at', '<', at)]))
              .execute();
          }
        }
        applied = live;
      });
    } catch (err) {
      // Put the bytes back so nothing is lost; the next flush retries.
      for (const b of batch) {
        const k = `${b.keyId}\u0000${b.bucket}`;
        const p = this.#pending.get(k);
        if (p) {
          p.up += b.up;
          p.down += b.down;
          p.last = Math.max(p.last, b.last);
        } else this.#pending.set(k, b);
      }
      if (!this.#closed)
        this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, 'usage flush failed');
      throw err;
    }
    // Committed: advance every cached window the new bytes fall in.
    for (const [from, entry] of this.#usageCache) {
      for (const b of applied) {
        if (b.bucket < from) continue;
        const t = entry.totals.get(b.keyId);
        if (t) {
          t.up += b.up;
          t.down += b.down;
        } else entry.totals.set(b.keyId, { up: b.up, down: b.down });
      }
    }
  }

  /** Run `fn` after pending usage is flushed, with no flush running meanwhile. */
  #afterFlush<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#flushing.then(async () => {
      await this.#flushNow().catch(() => undefined); // a failed flush keeps its bytes pending
      this.#assertOpen();
      return fn();
    });
    this.#flushing = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** A read query, on the reader thread when there is one (SQLite), else on the main connection. */
  async #read<R>(query: {
    compile(): { sql: string; parameters: readonly unknown[] };
    execute(): Promise<R[]>;
  }): Promise<R[]> {
    if (this.#reader && !this.#reader.failed) {
      const { sql: text, parameters } = query.compile();
      try {
        return (await this.#reader.query(text, parameters)) as R[];
      } catch (err) {
        if (!this.#reader.failed) throw err;
      }
    }
    return query.execute();
  }

  async usageSince(since: number): Promise<Map<string, UsageTotals>> {
    const from = Math.floor(since / HOUR_MS) * HOUR_MS;
    return this.#afterFlush(async () => {
      const now = this.#clock.now();
      let entry = this.#usageCache.get(from);
      if (!entry || now - entry.at >= this.#usageCacheTtlMs) {
        const rows = await this.#read(
          this.#db
            .selectFrom('usage')
            .select((eb) => [
              'key_id',
              eb.fn.sum<number>('up_bytes').as('up'),
              eb.fn.sum<number>('down_bytes').as('down'),
            ])
            .where('bucket', '>=', from)
            .groupBy('key_id'),
        );
        entry = {
          totals: new Map(rows.map((r) => [r.key_id, { up: num(r.up), down: num(r.down) }])),
          at: now,
          usedAt: now,
        };
        this.#usageCache.set(from, entry);
        // Windows move (hourly for the rolling one): forget those nobody asked for in an hour.
        for (const [f, e] of this.#usageCache) if (now - e.usedAt > HOUR_MS) this.#usageCache.delete(f);
      }
      entry.usedAt = now;
      return new Map([...entry.totals].map(([k, v]) => [k, { ...v }]));
    });
  }

  async usageBuckets(since: number): Promise<UsageBucket[]> {
    const from = Math.floor(since / HOUR_MS) * HOUR_MS;
    return this.#afterFlush(async () => {
      const rows = await this.#read(
        this.#db.selectFrom('usage').selectAll().where('bucket', '>=', from).orderBy('bucket'),
      );
      return rows.map((r) => ({
        keyId: r.key_id,
        bucket: num(r.bucket),
        up: num(r.up_bytes),
        down: num(r.down_bytes),
      }));
    });
  }

  #nodes: NodeRegistry | undefined;
  /** The fleet's nodes (nodes.ts), on this store's connection. */
  nodes(): NodeRegistry {
    this.#assertOpen();
    this.#nodes ??= new NodeRegistry(this.#db, this.dialect);
    return this.#nodes;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#flushTimer) this.#clock.clearTimeout(this.#flushTimer);
    await this.flush().catch(() => undefined);
    this.#closed = true;
    if (this.#flushTimer) this.#clock.clearTimeout(this.#flushTimer);
    await this.#reader?.close().catch(() => undefined);
    await this.#db.destroy();
  }
}

/** Open the store at `loc` (see parseStoreLocation). */
export function openStore(loc: StoreLocation, opts: StoreOptions = {}): Promise<KyselyStore> {
  return KyselyStore.open(loc, opts);
}
