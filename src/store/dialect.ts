import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { makeDirs } from '../shared/fs.js';
import { dirname, join, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { PostgresDialect, SqliteDialect, type Dialect } from 'kysely';
import type Pg from 'pg';
import type { StoreHealth } from './health.js';
import { checkNotLost, openFailure } from './integrity.js';
import { StoreError } from './types.js';

/** Where the store lives: a SQLite file (default) or a PostgreSQL database (fleet mode). */
export type StoreLocation = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

export const SQLITE_FILE_NAME = 'ladder.db';

/**
 * Parse `--store`: `sqlite:PATH`, `postgres://…` / `postgresql://…`, or a bare path to a SQLite file.
 * Without a spec the SQLite file lives in `dataDir`.
 */
export function parseStoreLocation(spec: string | undefined, dataDir: string): StoreLocation {
  if (spec === undefined || spec === '')
    return { kind: 'sqlite', path: join(resolve(dataDir), SQLITE_FILE_NAME) };
  if (/^postgres(ql)?:\/\//i.test(spec)) return { kind: 'postgres', url: spec };
  const path = spec.startsWith('sqlite:') ? spec.slice('sqlite:'.length) : spec;
  if (path === '')
    throw new StoreError('STORE_OPEN_FAILED', 'store: "sqlite:" needs a file path after the colon');
  return { kind: 'sqlite', path: resolve(path) };
}

export interface OpenedDialect {
  kind: StoreLocation['kind'];
  dialect: Dialect;
}

function loadPg(): typeof Pg {
  return createRequire(import.meta.url)('pg') as typeof Pg;
}

/**
 * The connection pool of a PostgreSQL store. A connection that breaks while idle (the server
 * stopped or restarted, the network cut) is an 'error' event on the pool: without a listener it
 * would end the process, and a node must outlive its database (docs/fleet.md). The store notices
 * the outage on its next query. A refused connection fails at once; waiting for a connection
 * (a silent network, or all 10 busy) gives up after 30 s, and so does a query, so nothing hangs.
 */
export function postgresPool(url: string, health: StoreHealth | undefined): Pg.Pool {
  const pool = new (loadPg().Pool)({
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: 30_000,
    query_timeout: 30_000,
  });
  pool.on('error', (err) => health?.down(err));
  // A connection that breaks while checked out emits 'error' on its client (the query in flight
  // fails too, and that is what the caller sees); unheard, the event would end the process.
  const heard = new WeakSet<Pg.PoolClient>();
  // Every connection attempt tells the store whether its database answers (StoreHealth logs an
  // outage once and its end once).
  const connect = pool.connect.bind(pool) as () => Promise<Pg.PoolClient>;
  (pool as { connect: () => Promise<Pg.PoolClient> }).connect = async () => {
    let client: Pg.PoolClient;
    try {
      client = await connect();
    } catch (err) {
      health?.down(err);
      throw err;
    }
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
  return pool;
}

/** Build the Kysely dialect for a location. Callers only ever see the `Store` interface. */
export function createDialect(loc: StoreLocation, health?: StoreHealth): OpenedDialect {
  if (loc.kind === 'postgres') {
    return {
      kind: 'postgres',
      // pg is loaded for a PostgreSQL store only: it costs a SQLite server megabytes of memory.
      dialect: new PostgresDialect({ pool: postgresPool(loc.url, health) }),
    };
  }
  // A store that existed (its marker says so) and is now missing or empty is refused, not re-created.
  checkNotLost(loc.path);
  let db: BetterSqlite3.Database;
  try {
    makeDirs(dirname(loc.path)); // not recursive mkdir: it hangs on /proc (see makeDirs)
    // The file holds key secrets: create it owner-only (SQLite gives -wal/-shm the same mode).
    try {
      writeFileSync(loc.path, '', { flag: 'wx', mode: 0o600 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    db = new BetterSqlite3(loc.path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
  } catch (err) {
    throw openFailure(`SQLite file ${loc.path}`, err);
  }
  return { kind: 'sqlite', dialect: new SqliteDialect({ database: db }) };
}
