/** D14 cover on a Mux.Cool carrier: padding the first K writes with KeepAlive frames peers drop. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeMuxFrame, MuxCoolDecoder, MuxNetwork, MuxStatus } from '../protocol/muxcool.js';
import { browsingRecordSize, MuxCover } from './mux-cover.js';

const newFrame = encodeMuxFrame(
  {
    sessionId: 1,
    status: MuxStatus.New,
    option: 0,
    target: { network: MuxNetwork.Tcp, host: '127.0.0.1', port: 0 },
  },
  Buffer.alloc(99, 1),
);

test('mux cover: the first K writes grow to the drawn size, still start with the same frame, and decode to the same data plus KeepAlives', () => {
  const sizes = [600, 300, 1200];
  const cover = new MuxCover({ records: 3, size: () => sizes.shift()! });
  const out = [cover.shape(newFrame), cover.shape(newFrame), cover.shape(newFrame), cover.shape(newFrame)];
  assert.deepEqual(
    out.map((b) => b.length),
    [600, 300, 1200, newFrame.length],
    'padded to the size, then left alone',
  );
  const dec = new MuxCoolDecoder();
  for (const b of out.slice(0, 3)) {
    assert.deepEqual(
      b.subarray(0, newFrame.length),
      newFrame,
      'the New frame stays first (dialect detection)',
    );
    const frames = dec.push(b);
    assert.equal(frames.length, 2);
    assert.equal(frames[1]!.status, MuxStatus.KeepAlive);
    assert.deepEqual(frames[0]!.data, Buffer.alloc(99, 1));
  }
  assert.equal(cover.pending, 0);
});

test('mux cover: a write already larger than the drawn size is not padded; records: 0 is off', () => {
  const cover = new MuxCover({ records: 8, size: () => 50 });
  assert.equal(cover.shape(newFrame).length, newFrame.length);
  const off = new MuxCover({ records: 0 });
  assert.equal(off.shape(newFrame).length, newFrame.length);
});

test('mux cover: browsing sizes spread over 240..1400, not a narrow range, and avoid the C8 Finished window', () => {
  const xs = Array.from({ length: 2000 }, browsingRecordSize);
  assert.ok(Math.min(...xs) >= 240 && Math.max(...xs) <= 1400);
  const buckets = new Set(xs.map((x) => Math.floor(x / 100)));
  assert.ok(buckets.size >= 9, `${buckets.size} 100-byte buckets`);
});

test('mux cover: idle cover sends a padded KeepAlive after the gap, and stop() ends it', async () => {
  const cover = new MuxCover({ records: 0, idleMs: [20, 30], size: () => 400 });
  const sent: Buffer[] = [];
  cover.start((b) => sent.push(cover.shape(b)));
  // Bounded wait for two of them (a loaded machine delays timers).
  for (let i = 0; i < 100 && sent.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  cover.stop();
  const n = sent.length;
  assert.ok(n >= 2, `${n} idle KeepAlives`);
  assert.ok(
    sent.every((b) => b.length === 400 && new MuxCoolDecoder().push(b)[0]!.status === MuxStatus.KeepAlive),
  );
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(sent.length, n, 'nothing after stop()');
});
