import { packageRoot } from '../shared/package-root.js';

/** Ladder's own version, from the package.json at the package root (src/ or dist/ alike). */
export function ladderVersion(): string {
  const version = packageRoot()?.pkg.version;
  return typeof version === 'string' ? version : '0.0.0';
}
