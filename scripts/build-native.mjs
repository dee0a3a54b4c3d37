#!/usr/bin/env node
// Builds the optional native SIP004 codec (native/*.cc -> build/Release/ladder_aead.node)
// with the node-gyp that ships inside npm, against the headers of the running node (no download).
// Never fails the install: on any problem it prints one warning line and exits 0, and Ladder then
// uses node:crypto. Set LADDER_SKIP_NATIVE=1 to skip, LADDER_NATIVE_VERBOSE=1 for node-gyp output.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const verbose = process.env.LADDER_NATIVE_VERBOSE === '1';
const out = join(root, 'build', 'Release', 'ladder_aead.node');

function warn(why) {
  console.warn(`ladder: native AEAD codec not built (${why}); using node:crypto instead, which is slower.`);
  process.exit(0);
}

/** node-gyp.js from npm's own tree: npm sets npm_config_node_gyp for lifecycle scripts. */
function findNodeGyp() {
  const prefix = dirname(dirname(process.execPath));
  const candidates = [
    process.env.npm_config_node_gyp,
    join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(prefix, 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'), // Windows layout
  ];
  if (process.env.npm_execpath) {
    // .../npm/bin/npm-cli.js -> .../npm/node_modules/node-gyp/bin/node-gyp.js
    candidates.push(
      join(dirname(dirname(process.env.npm_execpath)), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    );
  }
  for (const c of candidates) if (c && existsSync(c)) return c;
  const npm = spawnSync('npm', ['root', '-g'], { encoding: 'utf8', timeout: 30_000 });
  if (npm.status === 0) {
    const c = join(npm.stdout.trim(), 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (existsSync(c)) return c;
  }
  return undefined;
}

/** A directory with include/node/node_api.h for this node, so node-gyp never downloads headers. */
function findNodeDir() {
  const candidates = [process.env.npm_config_nodedir, dirname(dirname(process.execPath))];
  for (const c of candidates) {
    if (
      c &&
      existsSync(join(c, 'include', 'node', 'node_api.h')) &&
      existsSync(join(c, 'include', 'node', 'openssl', 'evp.h'))
    )
      return c;
  }
  return undefined;
}

/** Loads the addon in a child process and round-trips one chunk through it. */
function selfTest() {
  const code = `
    const a = require(${JSON.stringify(out)});
    const key = Buffer.alloc(32, 7);
    for (let m = 0; m < 3; m++) {
      if (!a.available(m)) throw new Error('method ' + m + ' unavailable');
      const k = m === 0 ? key.subarray(0, 16) : key;
      const w = a.encode(a.create(m, k, true), Buffer.from('ladder'));
      const p = a.decode(a.create(m, k, false), w, new Int32Array(4));
      if (!Buffer.isBuffer(p) || p.toString() !== 'ladder') throw new Error('round trip failed for method ' + m);
    }`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 30_000 });
  if (r.status === 0) return undefined;
  const lines = (r.stderr || '').split('\n').map((l) => l.trim());
  return lines.find((l) => /^[A-Za-z]*Error\b/.test(l)) ?? r.error?.message ?? `exit ${r.status}`;
}

if (process.env.LADDER_SKIP_NATIVE === '1') warn('LADDER_SKIP_NATIVE=1');
if (!existsSync(join(root, 'binding.gyp')) || !existsSync(join(root, 'native', 'module.cc')))
  warn('native sources not present');
const gyp = findNodeGyp();
if (!gyp) warn('node-gyp (bundled with npm) not found');
const nodedir = findNodeDir();
if (!nodedir)
  warn('node headers (include/node with openssl) not found next to this node; set npm_config_nodedir');

const r = spawnSync(
  process.execPath,
  [gyp, 'rebuild', `--nodedir=${nodedir}`, ...(verbose ? [] : ['--loglevel=error'])],
  {
    cwd: root,
    stdio: verbose ? 'inherit' : ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: 10 * 60_000,
    env: { ...process.env, npm_config_nodedir: nodedir },
  },
);
if (r.status !== 0 || !existsSync(out)) {
  const detail = `${r.stderr ?? ''}\n${r.stdout ?? ''}`
    .split('\n')
    .map((l) => l.trim())
    .find((l) => /error/i.test(l) && !/^gyp (ERR|info)/.test(l));
  warn(
    `node-gyp ${r.error ? r.error.message : `exit ${r.status}`}${detail ? `: ${detail.slice(0, 200)}` : ''}; LADDER_NATIVE_VERBOSE=1 shows more`,
  );
}
const bad = selfTest();
if (bad) {
  rmSync(out, { force: true }); // a module that cannot load must not be picked up at run time
  warn(`built module failed its self-test: ${bad.slice(0, 200)}`);
}
console.log(`ladder: native AEAD codec built (${out.slice(root.length + 1)})`);
