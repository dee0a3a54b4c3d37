// ScaledClock against real time (a real timer fires): lives here, not beside src/lab/clock.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScaledClock } from '../../src/lab/clock.js';

test('ScaledClock runs virtual time faster and fires timers early', async () => {
  const c = new ScaledClock(100);
  const t0 = c.now();
  const real0 = Date.now();
  await new Promise<void>((r) => c.setTimeout(r, 2_000));
  assert.ok(c.now() - t0 >= 1_900, `virtual elapsed ${c.now() - t0}`);
  assert.ok(Date.now() - real0 < 1_000);
  assert.throws(() => new ScaledClock(0), /positive/);
});
