import { realpathSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { packageRoot } from './package-root.js';

/** The checkout or installed package this code runs from (its package.json declares `ladder`). */
const ROOT = packageRoot()?.dir;
/** bin/ladder.js of this checkout or installed package. */
const OWN_BIN = join(ROOT ?? process.cwd(), 'bin', 'ladder.js');

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
  // packageRoot() found ROOT by its package.json declaring the `ladder` command.
  return ROOT !== undefined && real(cwd) === real(ROOT);
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
