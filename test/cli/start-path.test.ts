/**
 * How bin/ladder.js chooses between the compiled dist/ and src/ through tsx: dist/ only when its
 * build stamp (scripts/build.mjs) is at least as new as every source file and the file count
 * matches; the choice costs a few ms and is silent unless LADDER_DEBUG is set.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
// @ts-expect-error: plain JavaScript module without types (it runs before anything is compiled)
import { scanSources, STAMP_FILE, staleReason } from '../../scripts/src-freshness.mjs';
import { LADDER_BIN, REPO_ROOT } from '../helpers/peers.js';
import { cleanEnv } from '../helpers/clean-env.js';

type Scan = { files: number; newest: number };
const scan = scanSources as (dir: string) => Scan;
const stale = staleReason as (src: string, dist: string) => string | undefined;

const root = mkdtempSync(join(tmpdir(), 'ladder-start-'));
after(() => rmSync(root, { recursive: true, force: true }));
const src = join(root, 'src');
const dist = join(root, 'dist');

function setUp(): void {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(join(src, 'cli'), { recursive: true });
  mkdirSync(dist, { recursive: true });
  const old = new Date(Date.now() - 60_000);
  for (const f of ['cli/main.ts', 'a.ts', 'a.test.ts']) {
    writeFileSync(join(src, f), '');
    utimesSync(join(src, f), old, old);
  }
  writeFileSync(join(dist, STAMP_FILE as string), JSON.stringify(scan(src)));
}

test('dist/ is current right after a build, and the stamp counts only compiled sources', () => {
  setUp();
  assert.equal(stale(src, dist), undefined);
  assert.equal(scan(src).files, 2); // the test file is not compiled
});

test('dist/ is stale when a source is edited, added or deleted, or there is no stamp', () => {
  setUp();
  writeFileSync(join(src, 'a.ts'), 'edited');
  assert.match(stale(src, dist) ?? '', /changed since the last build/);
  setUp();
  rmSync(join(src, 'a.ts'));
  assert.match(stale(src, dist) ?? '', /source files/);
  setUp();
  writeFileSync(join(src, 'cli', 'new.ts'), '');
  assert.ok(stale(src, dist));
  setUp();
  rmSync(join(dist, STAMP_FILE as string));
  assert.match(stale(src, dist) ?? '', /no build/);
});

test('dist/ is stale after an edit whose old mtime was put back (cp -p, rsync -a, tar)', async () => {
  setUp();
  await new Promise((r) => setTimeout(r, 20)); // a later ctime than the stamp's, on any clock
  const old = new Date(Date.now() - 60_000);
  writeFileSync(join(src, 'a.ts'), 'edited, then its mtime restored');
  utimesSync(join(src, 'a.ts'), old, old);
  assert.match(stale(src, dist) ?? '', /changed since the last build/);
});

test('editing a test file does not make dist/ stale', () => {
  setUp();
  writeFileSync(join(src, 'a.test.ts'), 'edited');
  assert.equal(stale(src, dist), undefined);
});

test('the check of the real src/ takes a few ms', () => {
  const srcDir = join(REPO_ROOT, 'src');
  stale(srcDir, join(REPO_ROOT, 'dist')); // warm the directory cache, as a second start would
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = process.hrtime.bigint();
    stale(srcDir, join(REPO_ROOT, 'dist'));
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  times.sort((a, b) => a - b);
  // Generous for a loaded CI machine; typically 2-5 ms.
  assert.ok(times[2]! < 100, `median ${times[2]} ms`);
});

test('bin/ladder.js runs silently by default and says which tree with LADDER_DEBUG', () => {
  const run = (env: NodeJS.ProcessEnv): ReturnType<typeof spawnSync> =>
    spawnSync(process.execPath, [LADDER_BIN, '--version'], {
      env: cleanEnv({ LADDER_DEBUG: '', ...env }),
      encoding: 'utf8',
    });
  const quiet = run({ LADDER_DIST: '0' });
  assert.equal(quiet.status, 0);
  assert.equal(quiet.stderr, '');
  assert.match(String(quiet.stdout), /^\d+\.\d+\.\d+/);
  const debug = run({ LADDER_DIST: '0', LADDER_DEBUG: '1' });
  assert.equal(debug.status, 0);
  assert.equal(debug.stderr, 'ladder: running src/ through tsx (LADDER_DIST=0)\n');
});
