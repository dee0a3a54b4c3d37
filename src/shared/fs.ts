/**
 * Directory creation that cannot hang. Node 20's `mkdir(…, { recursive: true })` loops forever
 * when the kernel answers ENOENT for a directory whose parent exists (procfs does:
 * `--data-dir /proc/nope` spun for as long as it was let); this walks up itself and fails at once.
 */
import { existsSync as exists, lstatSync, mkdirSync, readlinkSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/** mkdir -p: create `dir` and missing parents with `mode`; an existing directory is fine. */
export function makeDirs(dir: string, mode = 0o700): void {
  try {
    mkdirSync(dir, { mode });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && isDirectory(dir)) return; // not a dangling link, which stat refuses
    const parent = dirname(dir);
    // ENOENT with the parent present: the file system refuses (procfs); nothing to walk up to.
    if (code !== 'ENOENT' || parent === dir || exists(parent)) throw err;
    makeDirs(parent, mode);
    mkdirSync(dir, { mode });
  }
}

/** Whether `path` is a directory (or a link to one); false when it is not there. */
export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Where `path` points when it is a symbolic link to nothing (a dangling link), else undefined. */
export function danglingLink(path: string): string | undefined {
  try {
    if (!lstatSync(path).isSymbolicLink() || exists(path)) return undefined;
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** `a symbolic link to TARGET, which does not exist` when `path` is one, else undefined. */
export function danglingWhy(path: string): string | undefined {
  const to = danglingLink(path);
  return to === undefined ? undefined : `a symbolic link to ${to}, which does not exist`;
}

/**
 * Why `dir` could not be made or used, in words (for `cannot create DIR: <why>`), from makeDirs's
 * or mkdirSync's error: a file in the way, no parent, a file system that refuses, permissions.
 */
export function dirErrorWhy(dir: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const dangling = danglingWhy(dir);
  if (dangling !== undefined) return dangling;
  switch (code) {
    case 'EEXIST':
      return 'a file of that name is in the way (not a directory)';
    case 'ENOTDIR':
      return 'a part of its path is a file, not a directory';
    case 'ENOENT':
      return exists(dirname(dir))
        ? 'the file system does not allow a new directory there'
        : 'its parent directory does not exist';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    default:
      return code ?? (err instanceof Error ? err.message : String(err));
  }
}
