/**
 * DATA_DIR/first-start.pending: written when a first start is about to make this data
 * directory's API certificate or the store's first key (before, so a start killed right after
 * making either still leaves it), removed once that start serves. A first start refused or
 * killed before it served leaves it, so the next start is still the first: its banner, access
 * config and key included, goes to the log once (under systemd the journal is where the operator
 * reads them), as the refused start's never did.
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { asObject, readDataFile, writeDataFile } from '../shared/data-file.js';
import { makeDirs } from '../shared/fs.js';

const MARK_FILE = 'first-start.pending';

export interface FirstStartMark {
  /** The key the first start makes (the store's first key), by its secret's digest (keyDigest). */
  key?: string;
  /** The same key by its id: the mark of an earlier version (`{"keyId":…}`), left by a first start
   *  refused before an upgrade. Read, never written. */
  keyId?: string;
}

/** Whether `mark` names `key` as the key the first start made (by digest, or an old mark's id). */
export function markNamesKey(mark: FirstStartMark | undefined, key: { id: string; secret: string }): boolean {
  if (mark?.key !== undefined) return mark.key === keyDigest(key.secret);
  return mark?.keyId !== undefined && mark.keyId === key.id;
}

/** What the mark holds of a key: a digest of its secret (unique, unlike an id another node may
 *  also give the store's first key; and no secret in the file). */
export function keyDigest(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** The mark a refused or killed first start left, if any (a damaged one: DataFileError). */
export function readFirstStartMark(dataDir: string): Promise<FirstStartMark | undefined> {
  const fix =
    'start (that start is then a restart: `ladder server access-config` prints the access config and keys)';
  return readDataFile(
    join(dataDir, MARK_FILE),
    (v) => {
      const o = asObject(v);
      if (!o) return 'not an object';
      if (typeof o.key === 'string') return { key: o.key };
      return typeof o.keyId === 'string' ? { keyId: o.keyId } : {};
    },
    fix,
  );
}

export async function writeFirstStartMark(dataDir: string, mark: FirstStartMark): Promise<void> {
  makeDirs(dataDir); // a PostgreSQL store's data directory may not exist yet
  await writeDataFile(join(dataDir, MARK_FILE), mark);
}

/** The first start has served: later starts are restarts. */
export async function clearFirstStartMark(dataDir: string): Promise<void> {
  await rm(join(dataDir, MARK_FILE), { force: true });
}
