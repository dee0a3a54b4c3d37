import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gib } from './state.js';

test('byte counts in refusals use the largest unit they fill (a 100 kB limit is not "0.00 GiB")', () => {
  assert.equal(gib(0), '0 B');
  assert.equal(gib(1), '1 B');
  assert.equal(gib(1023), '1023 B');
  assert.equal(gib(1024), '1.00 KiB');
  assert.equal(gib(100_000), '97.66 KiB');
  assert.equal(gib(32 * 2 ** 20), '32.00 MiB');
  assert.equal(gib(2 * 2 ** 30), '2.00 GiB');
  assert.equal(gib(1.5 * 2 ** 40), '1536.00 GiB');
});
