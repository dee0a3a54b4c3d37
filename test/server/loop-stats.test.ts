/**
 * WorkerPlane.loopStats(): each worker measures its own event loop from the first call on and
 * reports what happened since the previous call. Applied key deltas are counted in every worker
 * (the negative control: a call with no delta in between reports none). LoopMeter itself: a
 * blocked event loop shows as delay and utilization.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startWorkerPlane } from '../../src/server/index.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { silentLogger } from '../../src/shared/logger.js';
import { LoopMeter } from '../../src/server/workers/loop-stats.js';

const key = (id: string): RuntimeKey => ({
  id,
  method: 'chacha20-ietf-poly1305',
  secret: `loop-${id}-${randomBytes(4).toString('hex')}`,
});

test('loopStats: zeros at first, then the key deltas every worker applied since the last call', async (t) => {
  const plane = await startWorkerPlane({
    workers: 2,
    keys: [key('a')],
    port: 0,
    host: '127.0.0.1',
    logger: silentLogger,
    startAtBoot: true, // the stats come from running workers (by default they start at the first connection)
  });
  t.after(() => plane.close());
  const first = await plane.loopStats();
  assert.equal(first.length, plane.workers);
  for (const s of first) assert.deepEqual([s.deltas, s.gcs, s.delayMax], [0, 0, 0]);

  // Negative control: nothing applied, nothing counted.
  const idle = await plane.loopStats();
  for (const s of idle) assert.equal(s.deltas, 0);

  await plane.applyKeyDelta({ upsert: [key('b')], remove: [] });
  await plane.applyKeyDelta({ upsert: [key('c')], remove: ['a'] });
  const after = await plane.loopStats();
  assert.equal(after.length, plane.workers);
  for (const s of after) {
    assert.equal(s.deltas, 2, 'both deltas, in every worker');
    assert.ok(s.deltaMax >= 0 && s.utilization >= 0 && s.utilization <= 1);
  }
  // Reset by the call: the next report starts from zero again.
  for (const s of await plane.loopStats()) assert.equal(s.deltas, 0);
});

test('LoopMeter: a blocked event loop shows as delay and utilization', async () => {
  const meter = new LoopMeter();
  meter.take();
  await new Promise((r) => setTimeout(r, 50));
  const end = Date.now() + 600;
  while (Date.now() < end) {
    // block this thread's event loop for 600 ms
  }
  await new Promise((r) => setTimeout(r, 50));
  const blocked = meter.take();
  meter.stop();
  assert.ok(blocked.delayMax >= 250, `blocked: max delay ${blocked.delayMax} ms`);
  assert.ok(blocked.utilization >= 0.5, `blocked: utilization ${blocked.utilization}`);
});
