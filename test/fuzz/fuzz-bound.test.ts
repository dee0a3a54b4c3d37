/**
 * The fuzz runner's time bound per case (test/fuzz/fuzz.ts timeCase): judged on CPU time, so a
 * loaded machine (the case waits for a core) does not fail a fast parser, as the 250 ms wall-clock
 * bound did; a case that burns CPU past the bound every time still fails, and so does one that
 * blocks far past it without burning CPU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz, timeCase } from './fuzz.js';

/** Burn `ms` of CPU on this thread. */
function spin(ms: number): void {
  const c0 = process.cpuUsage();
  for (;;) {
    const c = process.cpuUsage(c0);
    if ((c.user + c.system) / 1000 >= ms) return;
  }
}

/** Block this thread for `ms` without burning CPU (as a case does while the machine is loaded). */
function block(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const BOUND = { cpuMs: 40, wallMs: 800 };

test('a case that waits (a loaded machine) within the wall backstop passes', () => {
  assert.equal(
    timeCase(() => block(200), BOUND),
    undefined,
  );
  // through the runner, with its own bound (x4 under CI=true): 200 ms by the clock, ~0 of CPU
  const stats = fuzz('waits', [1, 2], () => block(200), { typed: () => true, maxMs: 40 });
  assert.equal(stats.accepted, 2);
});

test('a case that burns CPU past the bound every time fails, naming both measures', () => {
  const why = timeCase(() => spin(80), BOUND);
  assert.match(
    why ?? '',
    /^took \d+ ms of CPU and \d+ ms by the clock at best of 3 runs \(bounds 40 and 800\)$/,
  );
  assert.ok(Number(/took (\d+)/.exec(why!)![1]) >= 80, why);
});

test('a case slow once (a collection of the heap landing in it) is measured again and passes', () => {
  let calls = 0;
  assert.equal(
    timeCase(() => {
      if (calls++ === 0) spin(80);
    }, BOUND),
    undefined,
  );
  assert.equal(calls, 2);
});

test('a case that blocks far past the wall backstop fails', () => {
  assert.match(timeCase(() => block(120), { cpuMs: 10, wallMs: 100 }) ?? '', /by the clock/);
});
