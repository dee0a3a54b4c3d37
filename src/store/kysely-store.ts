import { Kysely, sql, type ExpressionBuilder, type Transaction } from 'kysely';
import { systemClock, type Clock, type Timer } from '../shared/clock.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { createDialect, type StoreLocation } from './dialect.js';
import { isStoreUnavailable, StoreHealth } from './health.js';
import { ensureMarker, openFailure } from './integrity.js';
import type { PoolStats, StatsPool } from './pg-pool.js';
import { insertKeys } from './key-insert.js';
import { readKeyChanges } from './key-changes.js';
import { checkTables, migrate } from './migrations.js';
import {
  chunks,
  IN_CHUNK,
  keyPage,
  num,
  patchColumns,
  patchGroups,
  readKeys,
  rowToBucket,
  rowToKey,
  runKeyCheck,
} from './rows.js';
import { NodeRegistry } from './nodes.js';
import { identityKey, initSettings, readSettings, writeSettings } from './settings-table.js';
import { SqliteReader } from './sqlite-reader.js';
import { UsageTotalsCache } from './usage-totals.js';
import { HOUR_MS, UsageWriter } from './usage-writer.js';
import type { StoreOptions } from './store-options.js';
import type { Database } from './schema.js';
import {
  StoreError,
  type KeyChanges,
  type KeyCursor,
  type KeyPage,
  type KeyPatch,
  type KeyRecord,
  type KeyWriteCheck,
  type NewKey,
  type ServerSettings,
  type SettingsPatch,
  type Store,
  type UsageBucket,
  type UsageTotals,
} from './types.js';

export { HOUR_MS };

export type { StoreOptions };

type Db = Kysely<Database>;

/** The Store on Kysely: SQLite through better-sqlite3 by default, PostgreSQL through pg. */
export class KyselyStore implements Store {
  readonly dialect: 'sqlite' | 'postgres';
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #flushIntervalMs: number;
  readonly health: StoreHealth;
  readonly #writer: UsageWriter;
  readonly #totals: UsageTotalsCache;
  #flushTimer: Timer | undefined;
  #closed = false;
  /** False while an offline-opened store has not reached its database yet (allowOffline). */
  #connected = true;
  /** Settles once the database answered (at once unless opened offline). */
  ready: Promise<void> = Promise.resolve();
  #reader: SqliteReader | undefined;
  /** Store.keysVersion: advanced after every settled change of keys or settings. */
  keysVersion = 0;

  private constructor(
    db: Db,
    dialect: 'sqlite' | 'postgres',
    opts: StoreOptions,
    health: StoreHealth,
    sqlitePath?: string,
  ) {
    this.#db = db;
    this.dialect = dialect;
    if (sqlitePath !== undefined) {
      try {
        this.#reader = new SqliteReader(sqlitePath);
      } catch {
        this.#reader = undefined; // fall back to the main connection
      }
    }
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.logger ?? silentLogger;
    this.health = health;
    this.#flushIntervalMs = opts.flushIntervalMs ?? 500;
    this.#totals = new UsageTotalsCache({
      db,
      dialect,
      clock: this.#clock,
      ttlMs: opts.usageCacheTtlMs ?? 300_000,
      read: (q) => this.#read(q),
    });
    this.#writer = new UsageWriter({
      tx: (fn) => this.#tx(fn),
      dialect,
      clock: this.#clock,
      log: this.#log,
      health,
      writerId: opts.writerId ?? 'local',
      flushBatchEntries: opts.flushBatchEntries ?? 1000,
      ...(opts.testing ? { testing: opts.testing } : {}),
      onCommitted: (applied) => this.#totals.committed(applied),
    });
  }

  /** Open (creating if needed), run migrations, and make sure the server settings exist. */
  static async open(loc: StoreLocation, opts: StoreOptions = {}): Promise<KyselyStore> {
    const health = new StoreHealth(opts.logger, () => (opts.clock ?? systemClock).now());
    const { kind, dialect, pool } = createDialect(loc, health, {
      logger: opts.logger,
      ...(opts.poolSize !== undefined ? { max: opts.poolSize } : {}),
      ...(opts.acquireTimeoutMs !== undefined ? { acquireTimeoutMs: opts.acquireTimeoutMs } : {}),
    });
    const db = new Kysely<Database>({ dialect });
    // The reader thread opens the file read-only, so it starts after migrations created it.
    const make = (): KyselyStore => {
      const s = new KyselyStore(db, kind, opts, health, loc.kind === 'sqlite' ? loc.path : undefined);
      s.#pool = pool;
      return s;
    };
    let store: KyselyStore | undefined;
    try {
      await migrate(db);
      store = make();
      await store.#prepare(opts);
      if (loc.kind === 'sqlite') ensureMarker(loc.path, await store.getSettings());
    } catch (err) {
      if (loc.kind === 'postgres' && opts.allowOffline === true && isStoreUnavailable(err)) {
        health.down(err); // not logged: the caller says it (cli/fleet-node.ts), in one line
        store ??= make();
        store.#connectLater(opts);
        return store;
      }
      await store?.close().catch(() => undefined);
      await db.destroy().catch(() => undefined);
      throw openFailure(loc.kind === 'sqlite' ? loc.path : 'the PostgreSQL store', err);
    }
    store.#scheduleFlush();
    return store;
  }

  /** Settings present and every table readable (a table dropped after its migration: refuse now). */
  async #prepare(opts: StoreOptions): Promise<void> {
    await this.#tx((trx) => initSettings(trx, this.#clock.now(), opts.defaults ?? {}));
    await checkTables(this.#db);
  }

  /** Offline open: count usage now, keep trying the database, become a normal store once it answers. */
  #connectLater(opts: StoreOptions): void {
    this.#connected = false;
    const retryMs = opts.retryMs ?? 1000;
    this.ready = new Promise<void>((resolve) => {
      const attempt = (): void => {
        if (this.#closed) return;
        const t = this.#clock.setTimeout(() => {
          migrate(this.#db)
            .then(() => {
              this.#connected = true;
              return this.#prepare(opts);
            })
            .then(
              () => {
                this.health.up();
                this.#scheduleFlush();
                resolve();
              },
              (err: unknown) => {
                this.#connected = false;
                if (!isStoreUnavailable(err))
                  this.#log.warn(
                    { err: err instanceof Error ? err.message : String(err) },
                    'store open failed; retrying',
                  );
                attempt();
              },
            );
        }, retryMs);
        t.unref?.();
      };
      attempt();
    });
  }

  #pool: StatsPool | undefined;
  /** PostgreSQL: what the connection pool holds and what its callers waited for (else undefined). */
  poolStats(): PoolStats | undefined {
    return this.#pool?.stats();
  }

  /** False while the database cannot be reached (as last seen by a connection attempt). */
  get available(): boolean {
    return this.#connected && this.health.available;
  }

  /** (key, hour) usage entries counted but not yet committed to the database. */
  get pendingUsageEntries(): number {
    return this.#writer.uncommittedEntries;
  }

  // ---- transactions -------------------------------------------------------------------------

  /**
   * Run `fn` in one write transaction. On SQLite it is `BEGIN IMMEDIATE`, so a second process
   * (the CLI next to a running server) waits on the busy timeout instead of failing mid-way.
   */
  async #tx<T>(fn: (trx: Db) => Promise<T>, changesKeys = false): Promise<T> {
    this.#assertOpen();
    try {
      if (this.dialect === 'postgres') {
        return await this.#db.transaction().execute((trx: Transaction<Database>) => fn(trx));
      }
      return await this.#db.connection().execute(async (conn) => {
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
    } finally {
      if (changesKeys) this.keysVersion++; // once settled: a listing cache then sees the change
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreError('STORE_CLOSED', 'store: already closed');
    if (!this.#connected)
      throw new StoreError(
        'STORE_UNAVAILABLE',
        'store: the PostgreSQL store has not been reachable since this start',
      );
  }

  // ---- settings (settings-table.ts) -------------------------------------------------------

  async getSettings(): Promise<ServerSettings> {
    this.#assertOpen();
    return readSettings(this.#db);
  }

  async updateSettings(patch: SettingsPatch): Promise<ServerSettings> {
    const entries = Object.entries(patch).filter(([, v]) => v !== undefined);
    if (entries.length > 0) await this.#tx((trx) => writeSettings(trx, entries), true);
    return this.getSettings();
  }

  async identityKey(method: string, generate: () => string): Promise<string> {
    this.#assertOpen();
    return identityKey(this.#db, (fn) => this.#tx(fn), method, generate);
  }

  // ---- keys ---------------------------------------------------------------------------------

  async listKeys(): Promise<KeyRecord[]> {
    this.#assertOpen();
    const rows = await this.#db.selectFrom('keys').selectAll().orderBy('seq').orderBy('id').execute();
    return rows.map(rowToKey);
  }

  async listKeysPage(limit: number, after?: KeyCursor): Promise<KeyPage> {
    this.#assertOpen();
    const { seq, id } = after ?? { seq: -1, id: '' }; // no cursor: before every key (seq >= 0)
    const q = this.#db.selectFrom('keys').selectAll().orderBy('seq').orderBy('id').limit(limit);
    const next = (eb: ExpressionBuilder<Database, 'keys'>) =>
      eb.or([eb('seq', '>', seq), eb.and([eb('seq', '=', seq), eb('id', '>', id)])]);
    return keyPage(await this.#read(q.where(next)), limit);
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

  /** Keys changed after keys version `since` (all keys without it): key-changes.ts. */
  async keyChanges(since?: number): Promise<KeyChanges> {
    this.#assertOpen();
    const changes = await readKeyChanges(this.#db, this.dialect, since);
    for (const id of changes.deleted) this.#totals.forget(id); // deleted elsewhere, with its usage
    return changes;
  }

  async createKey(input: NewKey): Promise<KeyRecord> {
    const [key] = await this.createKeys([input]);
    return key!;
  }

  async createKeys(inputs: readonly NewKey[], check?: KeyWriteCheck): Promise<KeyRecord[]> {
    if (inputs.length === 0) return [];
    const now = this.#clock.now();
    return this.#tx(async (trx) => {
      if (check) await runKeyCheck(trx, this.dialect === 'postgres', check);
      return insertKeys(trx, this.dialect === 'postgres', inputs, now);
    }, true);
  }

  async updateKey(id: string, patch: KeyPatch, check?: KeyWriteCheck): Promise<KeyRecord | undefined> {
    const set = patchColumns(patch);
    return this.#tx(async (trx) => {
      if (check) await runKeyCheck(trx, this.dialect === 'postgres', check);
      if (Object.keys(set).length > 0) {
        const r = await trx.updateTable('keys').set(set).where('id', '=', id).executeTakeFirst();
        if (num(r.numUpdatedRows) === 0) return undefined;
      }
      const row = await trx.selectFrom('keys').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? rowToKey(row) : undefined;
    }, true);
  }

  async updateKeys(ids: readonly string[], patch: (key: KeyRecord) => KeyPatch): Promise<string[]> {
    return this.#tx(async (trx) => {
      const { keys, missing } = await readKeys(trx, ids, this.dialect === 'postgres');
      if (missing.length > 0) return missing;
      for (const { set, ids: some } of patchGroups(keys, patch))
        for (const part of chunks(some, IN_CHUNK))
          await trx.updateTable('keys').set(set).where('id', 'in', part).execute();
      return [];
    }, true);
  }

  async deleteKey(id: string): Promise<boolean> {
    return (await this.deleteKeys([id])).length === 0;
  }

  async deleteKeys(ids: readonly string[]): Promise<string[]> {
    const missing = await this.#tx(async (trx) => {
      const { missing } = await readKeys(trx, ids, this.dialect === 'postgres');
      if (missing.length > 0) return missing;
      for (const id of ids) this.#writer.forget(id);
      for (const part of chunks(ids, IN_CHUNK)) {
        await trx.deleteFrom('keys').where('id', 'in', part).execute();
        await trx.deleteFrom('usage').where('key_id', 'in', part).execute();
      }
      return [];
    }, true);
    // After the commit, so a flush that slipped in before it cannot leave bytes behind.
    if (missing.length === 0) for (const id of ids) this.#totals.forget(id);
    return missing;
  }

  // ---- usage --------------------------------------------------------------------------------

  addBytes(keyId: string, up: number, down: number): void {
    if (!this.#closed) this.#writer.add(keyId, up, down);
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
    if (!this.#connected) return Promise.resolve(); // offline open: the bytes wait in memory
    return this.#writer.flush();
  }

  /** Run `fn` after pending usage is flushed, with no flush running meanwhile. */
  #afterFlush<T>(fn: () => Promise<T>): Promise<T> {
    return this.#writer.afterFlush(async () => {
      this.#assertOpen();
      return fn();
    });
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
    return this.#afterFlush(() => this.#totals.since(from));
  }

  async usageBuckets(since: number): Promise<UsageBucket[]> {
    const from = Math.floor(since / HOUR_MS) * HOUR_MS;
    return this.#afterFlush(async () => {
      const rows = await this.#read(
        this.#db.selectFrom('usage').selectAll().where('bucket', '>=', from).orderBy('bucket'),
      );
      return rows.map(rowToBucket);
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
    this.#writer.closed = true;
    if (this.#flushTimer) this.#clock.clearTimeout(this.#flushTimer);
    await this.#reader?.close().catch(() => undefined);
    await this.#db.destroy();
  }
}

/** Open the store at `loc` (see parseStoreLocation). */
export function openStore(loc: StoreLocation, opts: StoreOptions = {}): Promise<KyselyStore> {
  return KyselyStore.open(loc, opts);
}
