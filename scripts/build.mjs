#!/usr/bin/env node
// `npm run build` (and `prepare`, so a checkout builds at `npm install` / `npm ci`): compile src/
// into a clean dist/ with tsc, then write dist/.build-stamp, which bin/ladder.js reads to decide
// whether dist/ is still current (see src-freshness.mjs).
//   --if-possible  (prepare) a failed build warns and exits 0: bin/ladder.js then runs src/
//                  through tsx, so an install never fails on a type error or a missing tsc.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scanSources, STAMP_FILE } from './src-freshness.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const lenient = process.argv.includes('--if-possible');

function fail(message) {
  if (!lenient) {
    console.error(`build: ${message}`);
    process.exit(1);
  }
  console.error(`build: ${message}; ladder will run from src/ through tsx (run \`npm run build\` to retry)`);
  process.exit(0);
}

if (!existsSync(join(root, 'src'))) process.exit(0); // an installed package: dist/ is shipped
let tsc;
try {
  tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  fail('typescript is not installed (a devDependency)');
}
// The sources as they are before tsc reads them: an edit during the build makes the stamp stale.
const before = scanSources(join(root, 'src'));
rmSync(join(root, 'dist'), { recursive: true, force: true });
const res = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
  cwd: root,
  stdio: 'inherit',
});
if (res.status !== 0) {
  rmSync(join(root, 'dist'), { recursive: true, force: true }); // never leave a partial build
  fail(`tsc exited with ${res.status ?? res.signal}`);
}
writeFileSync(join(root, 'dist', STAMP_FILE), `${JSON.stringify(before)}\n`);
