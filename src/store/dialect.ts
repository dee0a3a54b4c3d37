import { writeFileSync } from 'node:fs';
import { makeDirs } from '../shared/fs.js';
import { dirname, join, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { PostgresDialect, SqliteDialect, type Dialect } from 'kysely';
import type { StoreHealth } from './health.js';
import { accessHint, checkNotLost, openFailure } from './integrity.js';
import { postgresPool, type PoolOptions, type StatsPool } from './pg-pool.js';
import { PG_URL_UNREADABLE, StoreError } from './types.js';

export { postgresPool };

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
  // Any other scheme (mysql://, a misspelt postgress://) would become a new SQLite file named after it.
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec)?.[1];
  // sqlite:///x.db is another tool's form, read two ways (x.db here, or /x.db): which is not guessed.
  if (scheme?.toLowerCase() === 'sqlite')
    throw new StoreError(
      'STORE_OPEN_FAILED',
      `store: "sqlite://…" is not read (write sqlite:PATH, e.g. sqlite:/var/lib/ladder/ladder.db, or the path alone)`,
    );
  if (scheme !== undefined)
    throw new StoreError(
      'STORE_OPEN_FAILED',
      `store: unknown store scheme "${scheme}://" (use postgres://… for PostgreSQL, or a file path for SQLite)`,
    );
  const path = spec.startsWith('sqlite:') ? spec.slice('sqlite:'.length) : spec;
  if (path === '')
    throw new StoreError('STORE_OPEN_FAILED', 'store: "sqlite:" needs a file path after the colon');
  return { kind: 'sqlite', path: resolve(path) };
}

/**
 * True when a PostgreSQL URL has a '@' where none can stand as written (in the database name,
 * a query parameter's name or the fragment): a user name or password with a raw '/', '?' or '#',
 * which a URL parser ends the host part at. node-postgres would then connect to what it reads as
 * the host and port, the password's first digits taken for the port (and shown in the refusal:
 * `connect ECONNREFUSED 127.0.0.1:4242`), or fail on a port that is no number. Refused before any
 * connection, as the unparsable case is: one line that says to percent-encode.
 */
export function userinfoNotEncoded(url: string): boolean {
  const rest = url.replace(/^postgres(?:ql)?:\/\//i, '');
  const end = rest.search(/[/?#]/);
  if (end < 0) return false;
  const hash = rest.indexOf('#', end);
  const fragment = hash < 0 ? '' : rest.slice(hash + 1);
  const beforeHash = hash < 0 ? rest : rest.slice(0, hash);
  const q = beforeHash.indexOf('?', end);
  const path = q < 0 ? beforeHash.slice(end) : beforeHash.slice(end, q);
  const names =
    q < 0
      ? []
      : beforeHash
          .slice(q + 1)
          .split('&')
          .map((pair) => pair.split('=')[0]!);
  return [path, fragment, ...names].some((part) => part.includes('@'));
}

export interface OpenedDialect {
  kind: StoreLocation['kind'];
  dialect: Dialect;
  /** PostgreSQL: the pool (its stats). */
  pool?: StatsPool;
}

/** Build the Kysely dialect for a location. Callers only ever see the `Store` interface. */
export function createDialect(
  loc: StoreLocation,
  health?: StoreHealth,
  pool: Omit<PoolOptions, 'health'> = {},
): OpenedDialect {
  if (loc.kind === 'postgres') {
    if (userinfoNotEncoded(loc.url)) throw new StoreError('STORE_OPEN_FAILED', `store: ${PG_URL_UNREADABLE}`);
    // pg is loaded for a PostgreSQL store only: it costs a SQLite server megabytes of memory.
    const p = postgresPool(loc.url, { ...pool, health });
    return { kind: 'postgres', dialect: new PostgresDialect({ pool: p }), pool: p };
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
    // SQLite opens a file it may not write read-only without a word, and the first write (after
    // the server started) would fail: say so now, in the line a read-only directory gets.
    const hint = accessHint(loc.path, 'SQLITE_READONLY');
    if (hint !== '') {
      db.close();
      throw new StoreError('STORE_OPEN_FAILED', `store: cannot write ${loc.path}${hint}`);
    }
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
  } catch (err) {
    throw openFailure(`SQLite file ${loc.path}`, err, loc.path);
  }
  return { kind: 'sqlite', dialect: new SqliteDialect({ database: db }) };
}
