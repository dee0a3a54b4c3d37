import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface PackageJson {
  name?: unknown;
  version?: unknown;
  bin?: unknown;
}

let cached: { dir: string; pkg: PackageJson } | null | undefined;

/**
 * The root of this checkout or installed package: the nearest directory above this module whose
 * package.json declares the `ladder` command. Found by walking up rather than by a fixed `../..`,
 * because the same code runs from src/<zone>/, from tsc-style dist/<zone>/ and from the bundle's
 * dist/cli/ and dist/chunks/ (scripts/build.mjs), at different depths. Undefined when none is found.
 */
export function packageRoot(): { dir: string; pkg: PackageJson } | undefined {
  if (cached !== undefined) return cached ?? undefined;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;
      const bin = pkg.bin;
      if (bin !== null && typeof bin === 'object' && 'ladder' in bin) return (cached = { dir, pkg });
    } catch {
      // no (readable) package.json here: keep going up
    }
    const up = dirname(dir);
    if (up === dir) {
      cached = null;
      return undefined;
    }
    dir = up;
  }
}
