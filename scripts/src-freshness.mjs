// Whether dist/ was built from the sources as they are now, cheaply enough to ask at every start
// (one readdir per folder and one stat per file of src/: a few ms). Used by bin/ladder.js and
// scripts/build.mjs; plain JavaScript so it runs before anything is compiled.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Written into dist/ by scripts/build.mjs. */
export const STAMP_FILE = '.build-stamp';

/**
 * The compiled sources of srcDir (every *.ts but the tests): how many there are and the newest
 * status-change time (ctime). A file added, edited or restored moves `newest`, even when a tool
 * puts its old mtime back (cp -p, rsync -a, tar, unzip all may; none can set ctime, and ctime is
 * never in the future); one deleted changes `files`.
 */
export function scanSources(srcDir) {
  let files = 0;
  let newest = 0;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) {
        files++;
        newest = Math.max(newest, statSync(p).ctimeMs);
      }
    }
  };
  walk(srcDir);
  return { files, newest };
}

/** Why dist/ cannot stand in for srcDir, or undefined when it can. */
export function staleReason(srcDir, distDir) {
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(join(distDir, STAMP_FILE), 'utf8'));
  } catch {
    return 'no build (dist/ missing or built without the stamp)';
  }
  const now = scanSources(srcDir);
  if (now.files !== stamp.files)
    return `src/ has ${now.files} source files, dist/ was built from ${stamp.files}`;
  if (now.newest > stamp.newest) return 'src/ changed since the last build';
  return undefined;
}
