import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { checkSqliteFile, isDamageError, markerPath, readMarker, writeMarker } from './integrity.js';
import { limitProblem } from './key-limits.js';
import { StoreError } from './types.js';
import { ladderCommand } from '../shared/invocation.js';
import { syncDirSync as fsyncDir } from '../shared/data-file.js';

/**
 * `ladder store backup | restore | check` for a SQLite store, on SQLite's online backup API: a
 * backup is a consistent copy even while the server writes (WAL), and every file is written to a
 * temporary name, checked, fsynced and renamed, so an interrupted run leaves no half file.
 */

function fail(message: string): StoreError {
  return new StoreError('STORE_OPEN_FAILED', `store: ${message}`);
}

function fsyncFile(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Copy `from` (a live store or a backup) to `to` through a temporary file, checked before the rename. */
async function copyChecked(from: string, to: string): Promise<{ serverId: string; keys: number }> {
  const tmp = `${to}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  let src: BetterSqlite3.Database | undefined;
  try {
    // Every key's secret and the API prefix are in it: owner-only from the first byte (SQLite
    // would create it under the umask, 0644, and the restored store would keep that mode; its
    // journal takes the file's mode).
    writeFileSync(tmp, '', { flag: 'wx', mode: 0o600 });
    src = new BetterSqlite3(from, { readonly: true, fileMustExist: true });
    src.pragma('busy_timeout = 5000');
    await src.backup(tmp);
    src.close();
    src = undefined;
    // A backup must be complete on its own: one file, no WAL beside it.
    const copy = new BetterSqlite3(tmp);
    try {
      copy.pragma('journal_mode = DELETE');
    } finally {
      copy.close();
    }
    const summary = checkSqliteFile(tmp, { full: true });
    fsyncFile(tmp);
    renameSync(tmp, to);
    fsyncDir(dirname(to));
    return summary;
  } catch (err) {
    src?.close();
    for (const f of [tmp, `${tmp}-wal`, `${tmp}-shm`, `${tmp}-journal`]) rmSync(f, { force: true });
    if (err instanceof StoreError) throw err;
    if (isDamageError(err)) throw fail(`${from} is damaged (${(err as Error).message}); it cannot be copied`);
    throw fail(
      `cannot copy ${from} to ${to}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

/** `ladder store backup FILE`: a consistent copy of the store, safe while the server runs. */
export async function backupStore(dbPath: string, dest: string): Promise<{ serverId: string; keys: number }> {
  if (!existsSync(dbPath)) throw fail(`no store at ${dbPath} to back up`);
  if (existsSync(dest)) throw fail(`${dest} already exists; name a new file (a backup never overwrites one)`);
  // The copy is written beside it first: a missing directory said only "cannot copy …: ENOENT".
  if (!existsSync(dirname(dest))) throw fail(`${dest}: its directory ${dirname(dest)} does not exist`);
  checkSqliteFile(dbPath); // quick_check: do not copy a damaged store over an older good backup
  return copyChecked(dbPath, dest);
}

/**
 * True when another connection (a running server, another ladder command) has the store open.
 * Leaving WAL mode needs the only connection: SQLite answers SQLITE_BUSY when another holds it.
 */
export function storeInUse(dbPath: string): boolean {
  if (!existsSync(dbPath)) return false;
  let db: BetterSqlite3.Database | undefined;
  try {
    db = new BetterSqlite3(dbPath, { fileMustExist: true });
    db.pragma('busy_timeout = 0');
    db.pragma('journal_mode = DELETE');
    return false;
  } catch (err) {
    return (err as { code?: string }).code === 'SQLITE_BUSY';
  } finally {
    db?.close();
  }
}

/**
 * `ladder store restore FILE`: replace the store with a checked backup. Refused while the store is
 * in use. The file it replaces is kept beside it (`ladder.db.replaced-TIME`, with its -wal), and
 * the marker takes the backup's server id.
 */
export async function restoreStore(
  backup: string,
  dbPath: string,
  now: number = Date.now(),
): Promise<{ serverId: string; keys: number; replaced: string | undefined; previousServerId?: string }> {
  if (!existsSync(backup)) throw fail(`no backup at ${backup}`);
  try {
    checkSqliteFile(backup, { full: true });
  } catch (err) {
    // Without the "restore a backup" advice: this file is the backup.
    const why = (err as Error).message.replace(/^store: /, '').replace(/; restore a backup with: .*$/, '');
    throw fail(`${backup} cannot be restored: ${why}`);
  }
  // A new host's data directory that is not made yet: said so, not "cannot copy …: ENOENT".
  if (!existsSync(dirname(dbPath)))
    throw fail(
      `${dbPath}: the data directory ${dirname(dbPath)} does not exist (create it first, e.g. mkdir -p ${dirname(dbPath)})`,
    );
  if (storeInUse(dbPath)) {
    throw fail(`${dbPath} is in use (a running server or another ladder command): stop it, then restore`);
  }
  // Whose store this was (its marker): restoring another server's backup is allowed, and said.
  const previousServerId = readMarker(dbPath)?.serverId || undefined;
  const incoming = `${dbPath}.restoring`;
  const summary = await copyChecked(backup, incoming);
  let replaced: string | undefined;
  try {
    if (existsSync(dbPath)) {
      replaced = `${dbPath}.replaced-${new Date(now).toISOString().replace(/[:.]/g, '-')}`;
      for (const suffix of ['-wal', '-shm']) {
        if (existsSync(dbPath + suffix)) renameSync(dbPath + suffix, replaced + suffix);
      }
      renameSync(dbPath, replaced);
    }
    renameSync(incoming, dbPath);
    fsyncDir(dirname(dbPath));
  } catch (err) {
    rmSync(incoming, { force: true });
    throw fail(
      `cannot put the backup in place at ${dbPath}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  writeMarker(dbPath, { serverId: summary.serverId, createdTimestampMs: now });
  return { ...summary, replaced, ...(previousServerId !== undefined ? { previousServerId } : {}) };
}

/** `ladder store check`: the full integrity check, the tables, the server id and the keys' limits. */
export function checkStore(dbPath: string): { serverId: string; keys: number; marker: string } {
  if (!existsSync(dbPath)) throw fail(`no store at ${dbPath}`);
  const summary = checkSqliteFile(dbPath, { full: true });
  checkLimitColumns(dbPath);
  return { ...summary, marker: markerPath(dbPath) };
}

const LIMIT_COLUMNS = [
  ['device_limit', 'deviceLimit', 'devices ID N|none'],
  ['speed_limit', 'speedLimit', 'speed ID RATE|none'],
] as const;

/**
 * Every key's device and speed limit is none or within its bounds (a hand-edited row could hold
 * 0, -1, 2.5 or text; the data plane treats such a value as no limit). The first bad one is refused
 * in one line naming the key and the command that sets it right.
 */
function checkLimitColumns(dbPath: string): void {
  const db = new BetterSqlite3(dbPath, { readonly: true, fileMustExist: true });
  try {
    const columns = new Set((db.pragma('table_info(keys)') as { name: string }[]).map((c) => c.name));
    for (const [column, field, command] of LIMIT_COLUMNS) {
      if (!columns.has(column)) continue; // not migrated to 0007 yet: no limits to check
      const rows = db
        .prepare(`select id, ${column} as v, typeof(${column}) as t from keys where ${column} is not null`)
        .all() as { id: string; v: unknown; t: string }[];
      for (const r of rows) {
        const problem = limitProblem(field, r.t === 'integer' ? Number(r.v) : Number.NaN);
        if (problem === undefined) continue;
        throw fail(
          `${dbPath}: key ${JSON.stringify(r.id)} has ${field} ${JSON.stringify(r.v)}, which ${problem}; set it right with: ${ladderCommand()} keys ${command.replace('ID', JSON.stringify(r.id))}`,
        );
      }
    }
  } finally {
    db.close();
  }
}
