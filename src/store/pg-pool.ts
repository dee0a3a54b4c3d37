/**
 * The connection pool of a PostgreSQL store (issue 16). A fleet node's pool is small (DEFAULT
 * 3 connections; its LISTEN connection and its heartbeat thread's connection are separate, one
 * each): 100 nodes then hold at most ~500 connections, not ~1,200. It counts what a caller waited
 * for (PoolStats: checkouts, waits, the longest wait, acquire timeouts, refusals) so a node's stall
 * can be told apart from a slow database, and it says once a minute, in one line, when PostgreSQL
 * refuses connections for want of slots ("too many clients": the setting is max_connections).
 */
import { createRequire } from 'node:module';
import type Pg from 'pg';
import type { Logger } from '../shared/logger.js';
import type { StoreHealth } from './health.js';

/** Connections a store's pool opens at most (`poolSize` / LADDER_STORE_POOL). */
export const DEFAULT_POOL_SIZE = 3;
/**
 * How long a caller waits for a busy pool's connection before its store call fails
 * (`acquireTimeoutMs`). Long: the queue is first come, first served, so a caller that gave up and
 * retried would only wait again at its end (an API burst of 100 key creations queues for seconds).
 */
export const DEFAULT_ACQUIRE_TIMEOUT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 30_000;
/** A query that has not answered in this long fails (the database is gone or stuck). */
const QUERY_TIMEOUT_MS = 30_000;
/** PostgreSQL cancels a statement that runs this long (before the client's own timeout). */
const STATEMENT_TIMEOUT_MS = 25_000;
/** The "too many clients" warning: at most once per this period. */
const REFUSED_WARN_MS = 60_000;

/** SQLSTATE 53300 too_many_connections: PostgreSQL has no slot left (max_connections). */
export function isTooManyClients(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === '53300' || (err instanceof Error && /too many clients/i.test(err.message));
}

/** Every pooled connection stayed busy for acquireTimeoutMs: the call fails, the database is not down. */
export class PoolBusyError extends Error {
  override readonly name = 'PoolBusyError';
  constructor(max: number, ms: number) {
    super(
      `store: all ${max} pooled PostgreSQL connections stayed busy for ${ms} ms (LADDER_STORE_POOL sets the pool size)`,
    );
  }
}

/** What the pool did since it opened (counters) and holds now (gauges). */
export interface PoolStats {
  /** Connections open now, idle now, checked out now; callers waiting for one now. */
  open: number;
  idle: number;
  busy: number;
  waiting: number;
  max: number;
  /** Connections handed to callers. */
  checkouts: number;
  /** Checkouts that queued (every connection busy and the pool full, or callers already waiting). */
  waits: number;
  /** The longest time a checkout waited (ms; a queued wait or a new connection's start). */
  waitMsMax: number;
  /** Checkouts that gave up after acquireTimeoutMs (PoolBusyError). */
  timeouts: number;
  /** New connections PostgreSQL refused with "too many clients". */
  refused: number;
}

export interface PoolOptions {
  health?: StoreHealth | undefined;
  logger?: Logger | undefined;
  /** Connections at most (default DEFAULT_POOL_SIZE). */
  max?: number;
  /** Wait at most this long for a connection (default DEFAULT_ACQUIRE_TIMEOUT_MS). */
  acquireTimeoutMs?: number;
  /** application_name, so pg_stat_activity tells a node's pool from its listener and heartbeat. */
  applicationName?: string;
  now?: () => number;
}

export type StatsPool = Pg.Pool & { stats(): PoolStats };

function loadPg(): typeof Pg {
  return createRequire(import.meta.url)('pg') as typeof Pg;
}

/**
 * The pool. A connection that breaks while idle (the server stopped or restarted, the network cut)
 * is an 'error' event on the pool: without a listener it would end the process, and a node must
 * outlive its database (docs/fleet.md). The store notices the outage on its next query. A refused
 * connection fails at once (and the next evaluation retries 2 s later); a caller that finds every
 * connection busy waits acquireTimeoutMs at most (PoolBusyError, not an outage: the keys are not
 * read again in full); a statement gives up after 25 s, so nothing hangs and no lock is held long.
 */
export function postgresPool(url: string, opts: PoolOptions | StoreHealth | undefined = {}): StatsPool {
  const o: PoolOptions = opts !== undefined && 'down' in opts ? { health: opts } : (opts ?? {});
  const { health, logger } = o;
  const now = o.now ?? Date.now;
  const max = Math.max(1, o.max ?? DEFAULT_POOL_SIZE);
  const pool = new (loadPg().Pool)({
    connectionString: url,
    max,
    // Opening a connection: a database that does not answer in 30 s is unreachable (an overloaded
    // machine can take seconds to start a backend). Waiting for a busy pool: acquireTimeoutMs below.
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
    // The server gives up first (the client's query_timeout alone left the statement running,
    // holding its transaction's row locks, on a connection the pool had already closed: issue 16's
    // scale bench found usage flushes queued for minutes behind such orphans). A transaction its
    // client left idle (a stalled process) gives its locks back too.
    statement_timeout: STATEMENT_TIMEOUT_MS,
    idle_in_transaction_session_timeout: QUERY_TIMEOUT_MS,
    application_name: o.applicationName ?? 'ladder-store',
  }) as StatsPool;
  const counts = { checkouts: 0, waits: 0, waitMsMax: 0, timeouts: 0, refused: 0 };
  let warnedAt = -Infinity;
  pool.stats = () => ({
    open: pool.totalCount,
    idle: pool.idleCount,
    busy: pool.totalCount - pool.idleCount,
    waiting: pool.waitingCount,
    max,
    ...counts,
  });
  pool.on('error', (err) => health?.down(err));
  // A connection that breaks while checked out emits 'error' on its client (the query in flight
  // fails too, and that is what the caller sees); unheard, the event would end the process.
  const heard = new WeakSet<Pg.PoolClient>();
  // Every connection attempt tells the store whether its database answers (StoreHealth logs an
  // outage once and its end once).
  const connect = pool.connect.bind(pool) as () => Promise<Pg.PoolClient>;
  const acquireMs = o.acquireTimeoutMs ?? DEFAULT_ACQUIRE_TIMEOUT_MS;
  /** A connection for a caller that found every one busy: given up after acquireMs (not an outage). */
  const queuedConnect = (): Promise<Pg.PoolClient> =>
    new Promise((resolve, reject) => {
      let late = false;
      const timer = setTimeout(() => {
        late = true;
        counts.timeouts++;
        reject(new PoolBusyError(max, acquireMs));
      }, acquireMs);
      timer.unref?.();
      connect().then(
        (c) => {
          clearTimeout(timer);
          if (late) c.release();
          else resolve(c);
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (!late) reject(err as Error);
        },
      );
    });
  const checkout = async (): Promise<Pg.PoolClient> => {
    // pg-pool queues a caller behind others already waiting, and behind an idle connection about
    // to be handed out (callers then share it one at a time).
    const queued = pool.waitingCount > 0 || (pool.idleCount === 0 && pool.totalCount >= max);
    if (queued) counts.waits++;
    const t0 = now();
    let client: Pg.PoolClient;
    try {
      client = await (queued ? queuedConnect() : connect());
    } catch (err) {
      if (err instanceof PoolBusyError) throw err; // the database is fine: this node is busy
      if (isTooManyClients(err)) {
        counts.refused++;
        if (now() - warnedAt >= REFUSED_WARN_MS) {
          warnedAt = now();
          logger?.warn(
            { refused: counts.refused, poolSize: max },
            'PostgreSQL refused a connection: too many clients; raise max_connections in postgresql.conf (each fleet node holds its pool plus 2), lower LADDER_STORE_POOL, or put a pooler in front',
          );
        }
      }
      health?.down(err);
      throw err;
    }
    counts.checkouts++;
    counts.waitMsMax = Math.max(counts.waitMsMax, now() - t0);
    if (!heard.has(client)) {
      heard.add(client);
      client.on('error', (err) => health?.down(err));
    }
    health?.up();
    // A connection handed back inside a transaction (open, or failed: a rollback that could not
    // run) is closed, not pooled: pooled, it failed every later query with "current transaction
    // is aborted" (issue 16: fleet nodes that never applied a change set again).
    const release = client.release;
    client.release = (err?: Error | boolean) => {
      const tx = (client as { getTransactionStatus?: () => string | null }).getTransactionStatus?.();
      release(
        err ?? (tx === 'T' || tx === 'E' ? new Error('connection released inside a transaction') : undefined),
      );
    };
    return client;
  };
  // pg's own callers (pool.query) call connect with a callback: it must be called, not ignored.
  type Done = (err: Error | undefined, client?: Pg.PoolClient, release?: Pg.PoolClient['release']) => void;
  (pool as { connect: (cb?: Done) => Promise<Pg.PoolClient> | undefined }).connect = (cb?: Done) => {
    if (typeof cb !== 'function') return checkout();
    checkout().then(
      (c) => cb(undefined, c, c.release),
      (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
    );
    return undefined;
  };
  return pool;
}
