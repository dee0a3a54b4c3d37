import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { watchSends } from './send-timeout.js';

/** A socket whose queues always hold one chunk; `moving`: the kernel takes one between any two looks. */
function fake(moving: boolean): Duplex {
  let sent = 0;
  const handle = {
    writeQueueSize: 65_536,
    get bytesWritten(): number {
      if (moving) sent += 65_536;
      return sent + 65_536;
    },
  };
  const s = new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
  Object.defineProperty(s, 'writableLength', { get: () => 65_536 });
  Object.assign(s, { _handle: handle });
  s.on('error', () => {});
  return s;
}

test('progress is bytes taken, not a change of queue sizes: a steady reader whose queues look the same is kept', async () => {
  const steady = fake(true);
  const stalled = fake(false);
  const watch = watchSends(new Set([steady, stalled]), new WeakSet(), 40);
  try {
    const started = Date.now();
    while (!stalled.destroyed && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 10));
    assert.ok(stalled.destroyed, 'a socket whose bytes do not move is closed');
    // The stalled one went after at least 40 ms without progress: the steady one had as long.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(steady.destroyed, false, 'a socket whose bytes keep moving is kept');
  } finally {
    watch.stop();
    steady.destroy();
  }
});
