/**
 * Directory creation that cannot hang. Node 20's `mkdir(…, { recursive: true })` loops forever
 * when the kernel answers ENOENT for a directory whose parent exists (procfs does:
 * `--data-dir /proc/nope` spun for as long as it was let); this walks up itself and fails at once.
 */
import { existsSync as exists, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/** mkdir -p: create `dir` and missing parents with `mode`; an existing directory is fine. */
export function makeDirs(dir: string, mode = 0o700): void {
  try {
    mkdirSync(dir, { mode });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && statSync(dir).isDirectory()) return;
    const parent = dirname(dir);
    // ENOENT with the parent present: the file system refuses (procfs); nothing to walk up to.
    if (code !== 'ENOENT' || parent === dir || exists(parent)) throw err;
    makeDirs(parent, mode);
    mkdirSync(dir, { mode });
  }
}
