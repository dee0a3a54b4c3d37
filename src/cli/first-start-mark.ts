/**
 * DATA_DIR/first-start.pending: written when a first start makes this data directory's API
 * certificate or the store's first key, removed once that start serves. A first start refused
 * after either is made (a taken --dynamic-listen or web port) leaves it, so the retry is still
 * the first start: its banner, access config and key included, goes to the log once (under
 * systemd the journal is where the operator reads them), as the refused start's never did.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const MARK_FILE = 'first-start.pending';

export interface FirstStartMark {
  /** The key the first start made (the store's first key), if it made one. */
  keyId?: string;
}

/** The mark a refused first start left, if any (an unreadable one counts as a bare mark). */
export async function readFirstStartMark(dataDir: string): Promise<FirstStartMark | undefined> {
  let text: string;
  try {
    text = await readFile(join(dataDir, MARK_FILE), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const v = JSON.parse(text) as unknown;
    const keyId = (v as { keyId?: unknown } | null)?.keyId;
    return typeof keyId === 'string' ? { keyId } : {};
  } catch {
    return {};
  }
}

export async function writeFirstStartMark(dataDir: string, mark: FirstStartMark): Promise<void> {
  await writeFile(join(dataDir, MARK_FILE), `${JSON.stringify(mark)}\n`, { mode: 0o600 });
}

/** The first start has served: later starts are restarts. */
export async function clearFirstStartMark(dataDir: string): Promise<void> {
  await rm(join(dataDir, MARK_FILE), { force: true });
}
