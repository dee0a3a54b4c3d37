#!/usr/bin/env node
// Test runner wrapper: finds *.test.ts under the given roots (default: src, test),
// refuses to pass when it finds none, and runs them with node:test through tsx.
// Usage: node scripts/run-tests.mjs [--list] [root-or-file ...] [-- extra node --test flags]
//   --list  print the test files it would run, one a line, and exit
// Where tests live and how to run subsets: docs/testing.md.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const own = (dash === -1 ? argv : argv.slice(0, dash)).filter(Boolean);
const list = own.includes('--list');
const roots = own.filter((a) => a !== '--list');
const extra = dash === -1 ? [] : argv.slice(dash + 1);
if (roots.length === 0) roots.push('src', 'test');

function walk(p, out) {
  let st;
  try {
    st = statSync(p);
  } catch {
    console.error(`run-tests: no such path: ${p}`);
    process.exit(2);
  }
  if (st.isFile()) {
    if (p.endsWith('.test.ts')) out.push(p);
    return;
  }
  for (const name of readdirSync(p)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    walk(join(p, name), out);
  }
}

const files = [];
for (const r of roots) walk(r, files);
files.sort();
if (files.length === 0) {
  console.error(`run-tests: found no *.test.ts files under ${roots.join(', ')}; refusing to report success`);
  process.exit(1);
}
if (list) {
  for (const f of files) console.log(f);
  process.exit(0);
}
console.log(`run-tests: ${files.length} test files`);
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
const res = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    `--test-concurrency=${concurrency}`,
    '--test-timeout=180000',
    ...extra,
    ...files,
  ],
  { stdio: 'inherit' },
);
process.exit(res.status ?? 1);
