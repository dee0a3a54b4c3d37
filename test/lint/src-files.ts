/** The non-test TypeScript files under src/, for the structural lint tests. */
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Repo-relative paths (forward slashes) of src/**\/*.ts, test files excluded, sorted. */
export function srcFiles(dir = join(REPO_ROOT, 'src')): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...srcFiles(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts'))
      out.push(relative(REPO_ROOT, p).split('\\').join('/'));
  }
  return out.sort();
}
