#!/usr/bin/env node
// `npm run build` (and `prepare`, so a checkout builds at `npm install` / `npm ci`): bundle src/
// with esbuild into a clean dist/ (dist/cli/main.js, the entry bin/ladder.js imports, and the
// worker entries; shared code and each lazily imported part in dist/chunks/), then write
// dist/.build-stamp, which bin/ladder.js reads to decide whether dist/ is still current (see
// src-freshness.mjs), and dist/meta.json (which sources and packages went into which file; the
// lazy-loading test reads it), then the dashboard into web/dist (scripts/build-web.mjs).
//
// Why a bundle rather than tsc's one-file-per-module output: Node keeps per-module state for
// every ES module it loads (its source, scope and linking records); a process that loads some
// 600 modules from node_modules/ and src/ carries ~15-20 MiB more idle RSS than the same code
// in a few files (bench/idle-rss.ts). Dynamic `import()`s stay separate chunks, so each mode
// still loads only what it needs. Types are checked by `npm run typecheck`, not here.
//   --if-possible  (prepare) a failed build warns and exits 0: bin/ladder.js then runs src/
//                  through tsx, so an install never fails on a missing esbuild.
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildWeb } from './build-web.mjs';
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
let esbuild;
try {
  esbuild = createRequire(join(root, 'package.json'))('esbuild');
} catch {
  fail('esbuild is not installed (a devDependency)');
}

/**
 * Entry points: the CLI, plus every src/ module named `*.worker.ts` (worker_threads scripts are
 * started by file, so each must be a file of its own in dist/, at its path under src/; the code
 * that starts one resolves it with workerScript() in src/shared/worker-script.ts).
 */
function entryPoints() {
  const entries = [join(root, 'src', 'cli', 'main.ts')];
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.worker.ts')) entries.push(p);
    }
  };
  walk(join(root, 'src'));
  return entries;
}

// The sources as they are before esbuild reads them: an edit during the build makes the stamp stale.
const before = scanSources(join(root, 'src'));
rmSync(join(root, 'dist'), { recursive: true, force: true });
let result;
try {
  result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: entryPoints(),
    outbase: join(root, 'src'),
    outdir: join(root, 'dist'),
    entryNames: '[dir]/[name]',
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    minifyWhitespace: true,
    minifySyntax: true,
    // No __name(fn, "name") wrappers: they ran Object.defineProperty on every closure each time
    // it was made (about thirty per short connection per process) and cost 14-23 % of the
    // event-loop thread's instructions per connection (bench/conn-cost.ts, docs/benchmarks.md).
    // Nothing reads function or class names; only a name the bundler renamed to avoid a clash
    // shows differently in a stack trace.
    keepNames: false,
    sourcemap: false,
    metafile: true,
    logLevel: 'warning',
    // Native or optional modules stay in node_modules/: better-sqlite3 and ws' optional helpers
    // load .node files; pg is loaded only for a postgres:// store (with its optional pg-native).
    external: ['better-sqlite3', 'pg', 'pg-native', 'bufferutil', 'utf-8-validate'],
    // CommonJS packages inside an ES module bundle call require() for Node's built-ins.
    banner: {
      js: "import { createRequire as __ladderRequire } from 'node:module'; const require = __ladderRequire(import.meta.url);",
    },
  });
} catch (err) {
  rmSync(join(root, 'dist'), { recursive: true, force: true }); // never leave a partial build
  fail(`esbuild failed: ${err.message.split('\n')[0]}`);
}
const meta = {};
for (const [file, out] of Object.entries(result.metafile.outputs)) {
  meta[file.replace(/^dist\//, '')] = Object.keys(out.inputs);
}
writeFileSync(join(root, 'dist', 'meta.json'), `${JSON.stringify(meta)}\n`);
writeFileSync(join(root, 'dist', STAMP_FILE), `${JSON.stringify(before)}\n`);

// The operator's dashboard (web/src -> web/dist), served by the management API.
try {
  await buildWeb();
} catch (err) {
  fail(`the dashboard (web/) did not build: ${String(err.message).split('\n')[0]}`);
}
