import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { StoreError } from './types.js';
import { replaceFileSync } from '../shared/data-file.js';
import { ladderCommand } from '../shared/invocation.js';

/**
 * A SQLite store's marker: `ladder.db.marker` beside the database, written the first time the
 * store opens with its settings, holding the server id. It is how a first start is recognised
 * positively: with the marker present, a missing or empty database is a lost one (refused, with
 * the way to restore), never a reason to become a brand-new server.
 */
export const MARKER_SUFFIX = '.marker';

export interface StoreMarker {
  serverId: string;
  createdTimestampMs: number;
}

export function markerPath(dbPath: string): string {
  return `${dbPath}${MARKER_SUFFIX}`;
}

/** The next step for a lost or damaged SQLite store, in the words every refusal uses. */
export function restoreHint(dbPath: string): string {
  return `restore a backup with: ${ladderCommand()} store restore BACKUP --store ${dbPath} (see docs/operations.md)`;
}

/** What a damaged SQLite file reports (page, index or header damage), as one refusal line. */
export function damaged(dbPath: string, detail: string): StoreError {
  const first = detail.split('\n')[0]!.slice(0, 200);
  return new StoreError(
    'STORE_OPEN_FAILED',
    `store: ${dbPath} is damaged (${first}); ${restoreHint(dbPath)}`,
  );
}

/** True for SQLite's own errors about the file's contents (not permissions, not busy). */
export function isDamageError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return (
    code === 'SQLITE_CORRUPT' ||
    code === 'SQLITE_NOTADB' ||
    (typeof code === 'string' && code.startsWith('SQLITE_CORRUPT_'))
  );
}

export function readMarker(dbPath: string): StoreMarker | undefined {
  let text: string;
  try {
    text = readFileSync(markerPath(dbPath), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined; // no marker (opening reports the path)
    throw new StoreError(
      'STORE_OPEN_FAILED',
      `store: cannot read ${markerPath(dbPath)}: ${code ?? String(err)}${code === 'EACCES' || code === 'EPERM' ? ` (not readable by this user, uid ${process.getuid?.() ?? '?'})` : ''}`,
    );
  }
  try {
    const m = JSON.parse(text) as Partial<StoreMarker>;
    return { serverId: String(m.serverId ?? ''), createdTimestampMs: Number(m.createdTimestampMs ?? 0) };
  } catch {
    // A damaged marker still says the store existed.
    return { serverId: '', createdTimestampMs: 0 };
  }
}

/** Write (or replace) the marker whole or not at all (`replaceFileSync`: temp, fsync, rename). */
export function writeMarker(dbPath: string, marker: StoreMarker): void {
  const file = markerPath(dbPath);
  // Only these two fields: callers may pass the whole settings (the API prefix is a secret).
  const { serverId, createdTimestampMs } = marker;
  try {
    replaceFileSync(file, `${JSON.stringify({ serverId, createdTimestampMs })}\n`);
  } catch (err) {
    throw new StoreError(
      'STORE_OPEN_FAILED',
      `store: cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
}

/**
 * Before a SQLite store is opened (or created): with a marker beside it, the file must exist and
 * not be empty. Missing or empty means the data is gone: refuse with the file and the way back.
 */
export function checkNotLost(dbPath: string): void {
  const marker = readMarker(dbPath);
  if (!marker) return;
  let size = -1;
  try {
    size = statSync(dbPath).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return; // open reports it
  }
  if (size > 0) return;
  const id = marker.serverId ? ` (server ${marker.serverId})` : '';
  throw new StoreError(
    'STORE_OPEN_FAILED',
    `store: ${dbPath} is ${size < 0 ? 'missing' : 'empty'} but this server has run before${id}, says ${markerPath(dbPath)}; ` +
      `${restoreHint(dbPath)}; to start over as a new server instead, delete ${markerPath(dbPath)}`,
  );
}

/** The tables every Ladder store has; a file without them is not (or no longer) a store. */
export const STORE_TABLES = ['keys', 'usage', 'settings'] as const;

/**
 * `PRAGMA quick_check` (or the full `integrity_check`) on a SQLite store, read-only, plus the
 * tables and the server id: what a damaged page or index, or a file that is not a store, trips.
 * Returns the server id and the number of keys.
 */
export function checkSqliteFile(
  dbPath: string,
  opts: { full?: boolean; tables?: boolean } = {},
): { serverId: string; keys: number } {
  const full = opts.full === true;
  let db: BetterSqlite3.Database | undefined;
  try {
    db = new BetterSqlite3(dbPath, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    const rows = db.pragma(full ? 'integrity_check(20)' : 'quick_check(20)', { simple: false }) as Record<
      string,
      string
    >[];
    const problems = rows.map((r) => Object.values(r)[0]).filter((v) => v !== 'ok');
    if (problems.length > 0)
      throw damaged(dbPath, `${full ? 'integrity_check' : 'quick_check'}: ${problems[0]}`);
    if (opts.tables === false) return { serverId: '', keys: 0 };
    const have = new Set(
      (db.prepare("select name from sqlite_master where type = 'table'").all() as { name: string }[]).map(
        (r) => r.name,
      ),
    );
    const missing = STORE_TABLES.filter((t) => !have.has(t));
    if (missing.length > 0) {
      throw new StoreError(
        'STORE_OPEN_FAILED',
        `store: ${dbPath} is not a Ladder store (no ${missing.join(', ')} table); ${restoreHint(dbPath)}`,
      );
    }
    const id = db.prepare("select value from settings where name = 'serverId'").get() as
      { value: string } | undefined;
    if (!id) {
      throw new StoreError(
        'STORE_OPEN_FAILED',
        `store: ${dbPath} has no server settings (an emptied store); ${restoreHint(dbPath)}`,
      );
    }
    const keys = (db.prepare('select count(*) as n from keys').get() as { n: number }).n;
    return { serverId: String(JSON.parse(id.value)), keys };
  } catch (err) {
    if (err instanceof StoreError) throw err;
    if (isDamageError(err)) throw damaged(dbPath, (err as Error).message);
    const code = (err as { code?: string }).code;
    throw new StoreError(
      'STORE_OPEN_FAILED',
      `store: cannot check ${dbPath}: ${code && code !== 'SQLITE_ERROR' ? `${code}: ` : ''}${(err as Error).message}${accessHint(dbPath, code)}`,
    );
  } finally {
    db?.close();
  }
}

/**
 * Why SQLite could not open or write the file, when the file system says (SQLite's own message,
 * "unable to open database file", names neither permission nor a read-only mount).
 */
export function accessHint(dbPath: string, code: string | undefined): string {
  if (!code || !/^SQLITE_(CANTOPEN|READONLY|PERM)/.test(code)) return '';
  for (const [path, what] of [
    [dirname(dbPath), 'the data directory'],
    [dbPath, 'the store file'],
  ] as const) {
    try {
      accessSync(path, fsConstants.R_OK | fsConstants.W_OK);
    } catch (e) {
      const why = (e as { code?: string }).code;
      if (why === 'ENOENT') continue;
      if (why === 'EROFS') return ` (${what} is on a read-only file system)`;
      if (why === 'EACCES' || why === 'EPERM')
        return ` (${what} ${path} is not readable and writable by this user, uid ${process.getuid?.() ?? '?'})`;
    }
  }
  return '';
}

/** A failure while opening a store, as one line naming the file (the database URL's host for PostgreSQL). */
export function openFailure(where: string, err: unknown, dbPath = where): StoreError {
  if (err instanceof StoreError) return err;
  // The restore hint names the file itself (a command to paste), not `where`'s description.
  if (isDamageError(err)) return damaged(dbPath, (err as Error).message);
  return new StoreError(
    'STORE_OPEN_FAILED',
    `store: cannot open ${where}: ${err instanceof Error ? err.message : String(err)}`,
  );
}

/** After a SQLite store opened with its settings: write the marker if it has none yet. */
export function ensureMarker(dbPath: string, settings: StoreMarker): void {
  if (readMarker(dbPath) === undefined) writeMarker(dbPath, settings);
}

/**
 * What a server checks before serving from a store: a SQLite file that existed is still there,
 * and `PRAGMA quick_check` passes (damaged table or index pages are refused now, one line naming
 * the file, instead of 500s later). PostgreSQL is checked by opening (migrations, each table read).
 */
export function checkBeforeServing(loc: { kind: 'sqlite'; path: string } | { kind: 'postgres' }): void {
  if (loc.kind !== 'sqlite') return;
  checkNotLost(loc.path);
  let size: number;
  try {
    size = statSync(loc.path).size;
  } catch {
    return; // first start: the store is created by opening it
  }
  if (size > 0) checkSqliteFile(loc.path, { tables: readMarker(loc.path) !== undefined });
}
