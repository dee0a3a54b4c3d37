import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from './clock.js';
import { RepeatLimiter } from './repeat-limiter.js';

function setup(windowMs = 1000, maxKinds?: number) {
  const clock = new ManualClock();
  const reports: Array<[string, number, Record<string, number>]> = [];
  const limiter = new RepeatLimiter({
    clock,
    windowMs,
    ...(maxKinds !== undefined ? { maxKinds } : {}),
    onRepeats: (kind, count, details) => reports.push([kind, count, Object.fromEntries(details)]),
  });
  return { clock, reports, limiter };
}

test('the first event of a kind passes, repeats in its window are counted and reported once', () => {
  const { clock, reports, limiter } = setup();
  assert.equal(limiter.hit('a'), true);
  for (let i = 0; i < 99; i++) assert.equal(limiter.hit('a'), false);
  assert.equal(limiter.hit('b'), true, 'kinds are independent');
  assert.deepEqual(reports, []);
  clock.advance(1000);
  assert.deepEqual(reports, [['a', 99, {}]]);
});

test('a steady stream costs one report per window; a quiet kind passes again at once', () => {
  const { clock, reports, limiter } = setup();
  assert.equal(limiter.hit('a'), true);
  for (let w = 0; w < 3; w++) {
    for (let i = 0; i < 10; i++) {
      assert.equal(limiter.hit('a'), false);
      clock.advance(50);
    }
    clock.advance(500);
  }
  clock.advance(2000);
  assert.deepEqual(
    reports.map((r) => r[1]),
    [10, 10, 10],
  );
  assert.equal(limiter.size, 0, 'the quiet window ended and the kind was forgotten');
  assert.equal(limiter.hit('a'), true);
});

test('details are tallied among the repeats', () => {
  const { clock, reports, limiter } = setup();
  limiter.hit('u', 'replayed');
  limiter.hit('u', 'replayed');
  limiter.hit('u');
  limiter.hit('u', 'timestamp');
  limiter.hit('u', 'replayed');
  clock.advance(1000);
  assert.deepEqual(reports, [['u', 4, { replayed: 2, timestamp: 1 }]]);
});

test('memory is bounded: beyond maxKinds new kinds are held back; flush reports and forgets', () => {
  const { clock, reports, limiter } = setup(1000, 2);
  assert.equal(limiter.hit('a'), true);
  assert.equal(limiter.hit('b'), true);
  assert.equal(limiter.hit('c'), false);
  limiter.hit('a');
  limiter.flush();
  assert.deepEqual(reports, [['a', 1, {}]]);
  assert.equal(limiter.size, 0);
  clock.advance(5000);
  assert.equal(reports.length, 1, 'no timer left after flush');
  assert.equal(limiter.hit('c'), true);
});
