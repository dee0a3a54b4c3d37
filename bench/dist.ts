/**
 * The Ladder a user runs is the compiled dist/ (bin/ladder.js runs it whenever it is current):
 * the benches measure that, never the sources through tsx. `npm run build` first, unless the
 * bench was given --no-build; either way a dist/ not built from src/ as it is now is refused,
 * so a figure never silently belongs to older code.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
// @ts-expect-error: plain JavaScript module without types (it runs before anything is compiled)
import { staleReason } from '../scripts/src-freshness.mjs';
import { REPO_ROOT } from '../test/helpers/peers.js';

/** dist/cli/main.js of this checkout, built now unless `build` is false, and current. */
export function currentDist(build: boolean, log: (msg: string) => void): string {
  if (build) {
    log('npm run build');
    try {
      execFileSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build.mjs')], {
        stdio: 'pipe',
        cwd: REPO_ROOT,
      });
    } catch (err) {
      const first = String((err as { stderr?: Buffer }).stderr ?? err).split('\n')[0];
      throw new Error(`npm run build failed: ${first}`, { cause: err });
    }
  }
  const why = (staleReason as (src: string, dist: string) => string | undefined)(
    join(REPO_ROOT, 'src'),
    join(REPO_ROOT, 'dist'),
  );
  if (why)
    throw new Error(`dist/ is not current (${why}): run npm run build${build ? '' : ', or drop --no-build'}`);
  return join(REPO_ROOT, 'dist', 'cli', 'main.js');
}
