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

/**
 * A PATH entry npm added for the process it runs, absent from the user's shell: `npx ladder` in
 * the checkout puts a copy of it under ~/.npm/_npx/…/node_modules/.bin, `npm run` the project's
 * node_modules/.bin.
 */
function npmAdded(dir: string, env: NodeJS.ProcessEnv): boolean {
  return env.npm_lifecycle_event !== undefined && /[\\/]node_modules[\\/]\.bin[\\/]?$/.test(dir);
}

/**
 * True when the `ladder` the user's shell runs is this copy (`npm link`, `npm install -g .`, or
 * the package installed globally): the first `ladder` on PATH, as the shell finds it.
 */
function onPath(env: NodeJS.ProcessEnv): boolean {
  const own = real(OWN_BIN);
  if (own === undefined) return false;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir || npmAdded(dir, env)) continue;
    const found = real(join(dir, 'ladder'));
    if (found !== undefined) return found === own;
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

/** Our own package.json scripts that run the CLI: `npm start` is `node bin/ladder.js server`. */
const NPM_SCRIPT = /^node bin\/ladder\.js((?: [a-z][a-z-]*)*)$/;

/**
 * The help command for the subcommand `path` (`['keys', 'add']`, `[]` for the top), in the
 * form the person ran this process: `npm start -- add --help` (npm start runs `ladder server`),
 * `npm run ladder -- keys add --help`, `npx ladder keys add --help`; else as ladderCommand.
 * The npm forms are told apart by the environment npm gives the process it runs.
 */
export function helpCommand(
  path: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): string {
  const event = env.npm_lifecycle_event;
  const script = env.npm_lifecycle_script?.trim();
  let words: string[] | undefined;
  // `npx ladder` and `npm exec ladder`: npm names the bin as the script, quoted.
  if (event === 'npx' && (script === 'ladder' || script === "'ladder'")) words = ['npx ladder', ...path];
  const m = event && script ? NPM_SCRIPT.exec(script) : null;
  if (m) {
    const fixed = m[1]!.split(' ').filter(Boolean);
    if (fixed.every((w, i) => path[i] === w)) {
      const npm = event === 'start' ? 'npm start' : `npm run ${event}`;
      const rest = path.slice(fixed.length);
      // `npm start --help` would be npm's own help: the `--` passes it on.
      words = [`${npm} --`, ...rest];
    }
  }
  words ??= [ladderCommand(env, cwd), ...path];
  return [...words, '--help'].join(' ');
}
