import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../test/helpers/peers.js';

/**
 * `npm run build` (scripts/build.mjs: tsc into dist/ and its freshness stamp) for a bench that
 * runs Ladder from dist/. A bench that starts bin/ladder.js without it runs src/ through tsx
 * whenever dist/ is older than a source file, silently: on the WebSocket bulk path that costs
 * about half again the CPU per MiB (docs/benchmarks.md, ws12).
 */
export function buildDist(): void {
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
