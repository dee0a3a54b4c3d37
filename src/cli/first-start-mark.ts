/**
 * DATA_DIR/first-start.pending: written when a first start is about to make this data
 * directory's API certificate or the store's first key (before, so a start killed right after
 * making either still leaves it), removed once that start serves. A first start refused or
 * killed before it served leaves it, so the next start is still the first: its banner, access
 * config and key included, goes to the log once (under systemd the journal is where the operator
 * reads them), as the refused start's never did.
 */
import { createHash } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirs } from '../shared/fs.js';

const MARK_FILE = 'first-start.pending';

export interface FirstStartMark {
  /** The key the first start makes (the store's first key), by its secret's digest (keyDigest). */
  key?: string;
}

/** What the mark holds of a key: a digest of its secret (unique, unlike an id another node may
 *  also give the store's first key; and no secret in the file). */
export function keyDigest(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export async function readFirstStartMark(dataDir: string): Promise<FirstStartMark | undefined> {
  let text: string;
  try {
    text = await readFile(join(dataDir, MARK_FILE), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const v = JSON.parse(text) as unknown;
    const key = (v as { key?: unknown } | null)?.key;
    return typeof key === 'string' ? { key } : {};
  } catch {
    return {};
  }
}

export async function writeFirstStartMark(dataDir: string, mark: FirstStartMark): Promise<void> {
  makeDirs(dataDir); // a PostgreSQL store's data directory may not exist yet
  await writeFile(join(dataDir, MARK_FILE), `${JSON.stringify(mark)}\n`, { mode: 0o600 });
}

/** The first start has served: later starts are restarts. */
export async function clearFirstStartMark(dataDir: string): Promise<void> {
  await rm(join(dataDir, MARK_FILE), { force: true });
}
