#!/usr/bin/env node
// Entry point. It runs the compiled dist/ whenever dist/ is current: an installed package (only
// bin/ and dist/ are published) always; a checkout when its last build (`npm install` runs it
// through the `prepare` script, or `npm run build`) is newer than every source file. Otherwise,
// in a checkout with edited sources or no build, it runs src/ through tsx, silently (LADDER_DEBUG=1
// says which and why on stderr), so a stale dist/ never shadows the sources.
// LADDER_DIST=1 forces dist/, LADDER_DIST=0 forces src/ through tsx.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout } from 'node:timers';
import { setFlagsFromString } from 'node:v8';

// Startup allocates a burst of short-lived objects (module compilation, option parsing) that
// would grow V8's young generation to several MiB that an idle process keeps committed. Keep it
// at its initial size (1 MiB semi-spaces) while starting: about 5 MiB less idle RSS
// (bench/idle-rss.ts). It stays so after start-up too: a burst of connections would otherwise
// grow it as well, some 4 MiB a client then keeps while holding them idle (~4 KiB per idle
// connection of 1,000), and what a connection allocates in JS is small and short-lived (the
// relay's bytes move in the addon); the server's data-plane workers get the same through their
// resourceLimits (src/server/workers/young.ts). LADDER_YOUNG=0 restores V8's default growth (2)
// once started (docs/benchmarks.md, "Idle connections").
// Likewise, start-up code runs once but long enough for TurboFan to optimize some of it, which
// pages in some 3.5 MiB of the optimizing compiler for a process that then sits idle: hold the
// optimizer off while starting, then turn it on (code that becomes hot afterwards, the relay's,
// is optimized as usual). Start-up ends when the command says so (src/shared/startup.ts, after
// it listens and prints its banner), or after 10 s at the latest.
setFlagsFromString('--semi-space-growth-factor=1');
setFlagsFromString('--no-opt');
const startupDone = () => {
  if (globalThis[Symbol.for('ladder.startupDone')] !== startupDone) return;
  delete globalThis[Symbol.for('ladder.startupDone')];
  if (process.env.LADDER_YOUNG === '0') setFlagsFromString('--semi-space-growth-factor=2');
  setFlagsFromString('--opt');
};
globalThis[Symbol.for('ladder.startupDone')] = startupDone;
setTimeout(startupDone, 10_000).unref();

const srcDir = fileURLToPath(new URL('../src/', import.meta.url));
const distDir = fileURLToPath(new URL('../dist/', import.meta.url));
const force = process.env.LADDER_DIST;

let why; // why src/ runs instead of dist/; undefined: dist/
if (force === '0') why = 'LADDER_DIST=0';
else if (force !== '1' && existsSync(srcDir)) {
  const { staleReason } = await import('../scripts/src-freshness.mjs');
  why = staleReason(srcDir, distDir);
}
if (process.env.LADDER_DEBUG) {
  process.stderr.write(`ladder: running ${why ? `src/ through tsx (${why})` : 'dist/'}\n`);
}
if (why) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli/main.ts', import.meta.url).href);
} else {
  await import(new URL('../dist/cli/main.js', import.meta.url).href);
}
