import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './peers.js';

/** The files under the repository's `dir` (recursively) whose names match `ext`, node_modules left out. */
export function filesUnder(dir: string, ext: RegExp): string[] {
  return readdirSync(join(REPO_ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => ext.test(f) && !f.includes('node_modules'))
    .map((f) => join(REPO_ROOT, dir, f));
}
