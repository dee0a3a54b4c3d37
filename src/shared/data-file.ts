/**
 * The small JSON files ladder keeps in its data directory beside the store (api-endpoint.json,
 * web-endpoint.json, first-start.pending): written whole (a temporary file renamed over the old
 * one, mode 0600), so a crash leaves the old file or the new one; read with one rule. A missing
 * file is no error; one that is there but cannot be read or used is refused in one line naming
 * it and the way out, never taken for "none" silently.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
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

/** How `replaceFile` writes: the file's mode (0600 unless said), and a step just before the rename. */
export interface ReplaceOptions {
  /** The new file's mode, set exactly (the umask does not narrow or widen it); 0600 by default. */
  mode?: number;
  /** Runs after the data is synced, before the rename (replay state keeps a previous generation). */
  beforeRename?: () => Promise<void>;
}

/**
 * The temporary file beside `file`: a name no one can guess, created new (O_EXCL), so in a shared
 * directory (an output file in /tmp, `--replay-state /tmp/…`) another user's symlink at a
 * predictable name is never followed and a file another user left there cannot block the write.
 * It is `tempPrefix(file)` + 16 random hex digits + `.tmp`: what a crash leaves can be swept by
 * that pattern. The prefix keeps at most TEMP_PREFIX_BYTES of the file's name, so the temporary
 * name is never longer than 255 bytes (NAME_MAX) whatever the length of the name it replaces.
 */
export function tempBeside(file: string): string {
  return join(dirname(file), `${tempPrefix(file)}${randomBytes(8).toString('hex')}.tmp`);
}

/** Of the file's name, what its temporary files' names start with (bytes, then the dot). */
const TEMP_PREFIX_BYTES = 200;

/**
 * What the names of `file`'s temporary files start with: `NAME.`, NAME cut to its first
 * TEMP_PREFIX_BYTES bytes (UTF-8, at a character's start) when longer.
 */
export function tempPrefix(file: string): string {
  const name = Buffer.from(basename(file));
  let end = Math.min(name.length, TEMP_PREFIX_BYTES);
  while (end < name.length && end > 0 && (name[end]! & 0xc0) === 0x80) end--; // not inside a character
  return `${name.subarray(0, end).toString()}.`;
}

/**
 * A failed step's error, about `file` rather than the temporary file (which the user never named
 * and which is gone by then): `CODE: why, write 'FILE'`, with `path` FILE. Other errors go on as
 * they are.
 */
function aboutTarget(err: unknown, file: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (!(err instanceof Error) || typeof e.code !== 'string') return err;
  const was = e.message;
  e.message = `${was.split(', ')[0] ?? e.code}, write '${file}'`;
  if (e.stack !== undefined) e.stack = e.stack.replace(was, e.message);
  e.path = file;
  delete (e as { dest?: string }).dest;
  return e;
}

/**
 * Replace `file` with `data` whole or not at all: a new temporary file beside it (`mode`, 0600 by
 * default), written and synced, then renamed over it, and the directory synced so the rename
 * survives a power cut; the temporary file is removed when a step fails, and the error goes on.
 * `replaceFileSync` is the same for callers that cannot wait (a save on exit).
 */
export async function replaceFile(
  file: string,
  data: string | Uint8Array,
  { mode = 0o600, beforeRename }: ReplaceOptions = {},
): Promise<void> {
  const tmp = tempBeside(file);
  let callers = false; // in beforeRename: its error is the caller's own, passed on as it is
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.chmod(mode);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    callers = true;
    await beforeRename?.();
    callers = false;
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw callers ? err : aboutTarget(err, file);
  }
  await syncDir(dirname(file));
}

export function replaceFileSync(
  file: string,
  data: string | Uint8Array,
  { mode = 0o600 }: Omit<ReplaceOptions, 'beforeRename'> = {},
): void {
  const tmp = tempBeside(file);
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      fchmodSync(fd, mode);
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw aboutTarget(err, file);
  }
  syncDirSync(dirname(file));
}

/** fsync a directory so a rename in it survives a power cut (best effort: not every FS allows it). */
export async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // not every file system allows fsync on a directory
  }
}

export function syncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // not every file system allows fsync on a directory
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** `v` as a plain object (for `use`), or undefined. */
export function asObject(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}
