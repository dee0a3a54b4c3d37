import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { packageRoot } from '../shared/package-root.js';

/** bin/ladder.js of this checkout or installed package. */
const OWN_BIN = join(packageRoot()?.dir ?? process.cwd(), 'bin', 'ladder.js');

function real(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/** True when `ladder` on PATH is this copy (`npm link`, `npm install -g .`, or the package installed globally). */
function onPath(env: NodeJS.ProcessEnv): boolean {
  const own = real(OWN_BIN);
  if (own === undefined) return false;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && real(join(dir, 'ladder')) === own) return true;
  }
  return false;
}

/** True when `cwd` is the root of this checkout, where `npx ladder` runs its own bin. */
function inOwnCheckout(cwd: string): boolean {
  const root = dirname(dirname(OWN_BIN));
  const pkg = join(cwd, 'package.json');
  if (real(cwd) !== real(root) || !existsSync(pkg)) return false;
  try {
    const bin = (JSON.parse(readFileSync(pkg, 'utf8')) as { bin?: unknown }).bin;
    return bin !== null && typeof bin === 'object' && 'ladder' in bin;
  } catch {
    return false;
  }
}

/**
 * How to run this ladder from the shell the user is in, for the commands banners suggest:
 * `ladder` when that name on PATH is this copy, `npx ladder` in the checkout's own directory
 * (npm runs the project's own bin; elsewhere `npx ladder` would fetch an unrelated package),
 * else `node /path/to/bin/ladder.js`.
 */
export function ladderCommand(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): string {
  if (onPath(env)) return 'ladder';
  if (inOwnCheckout(cwd)) return 'npx ladder';
  return `node ${/[\s'"$]/.test(OWN_BIN) ? JSON.stringify(OWN_BIN) : OWN_BIN}`;
}
