/**
 * The small JSON files ladder keeps in its data directory beside the store (api-endpoint.json,
 * web-endpoint.json, first-start.pending): written whole (a temporary file renamed over the old
 * one, mode 0600), so a crash leaves the old file or the new one; read with one rule. A missing
 * file is no error; one that is there but cannot be read or used is refused in one line naming
 * it and the way out, never taken for "none" silently.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import { CodedError } from './errors.js';

/** A data-directory file that is there but unusable: `FILE: damaged (WHY); delete it to FIX`. */
export class DataFileError extends CodedError<'DATA_FILE_DAMAGED'> {
  override readonly name = 'DataFileError';
}

/**
 * The value in `file`, or undefined when there is none. `use` turns the parsed JSON into the
 * value, or returns why it cannot (a string); `fix` ends the refusal ("delete it to FIX").
 */
export async function readDataFile<T>(
  file: string,
  use: (v: unknown) => T | string,
  fix: string,
): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw damaged(file, `cannot be read: ${code ?? String(err)}`, fix);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw damaged(file, text.trim() === '' ? 'empty' : 'not JSON', fix);
  }
  const got = use(v);
  if (typeof got === 'string') throw damaged(file, got, fix);
  return got;
}

function damaged(file: string, why: string, fix: string): DataFileError {
  return new DataFileError('DATA_FILE_DAMAGED', `${file}: damaged (${why}); delete it to ${fix}`);
}

/**
 * Write `value` to `file` as one JSON line, whole or not at all (0600: some hold a secret path).
 * Synced before the rename: a power cut right after must not leave the new name on an empty file,
 * which the next start would refuse as damaged.
 */
export async function writeDataFile(file: string, value: unknown): Promise<void> {
  await replaceFile(file, `${JSON.stringify(value)}\n`);
}

/**
 * Replace `file` with `text` whole or not at all: a temporary file beside it (0600), synced, then
 * renamed over it; the temporary file is removed when a step fails, and the error goes on.
 */
export async function replaceFile(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** `v` as a plain object (for `use`), or undefined. */
export function asObject(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}
