// relay(): back-pressure follows what the destination still holds after a read's writes, not
// write()'s answers: while corked (a read that decodes to several chunks, as a Shadowsocks read
// of two 16 KiB records does) the second write said false even when the destination then took
// both at once, and a pause, a 'drain' a tick later and a resume followed every such read
// (issue 12's slow receive path).
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { relay } from '../../src/transport/relay.js';
import { waitFor } from '../helpers/wait.js';

const CHUNK = 64 * 1024;
const CHUNKS = 64;

/** A destination that takes every write at once (as a socket whose kernel buffer has room) or a tick later. */
function sink(async: boolean): Duplex & { received: number } {
  const d = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      d.received += chunk.length;
      if (async) setImmediate(cb);
      else cb();
    },
  }) as Duplex & { received: number };
  d.received = 0;
  return d;
}

async function run(async: boolean): Promise<{ pauses: number; received: number }> {
  const src = new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
  const dst = sink(async);
  let pauses = 0;
  src.on('pause', () => pauses++);
  // Each read decodes to two chunks (like two Shadowsocks records): written corked.
  const split = (c: Buffer): Buffer[] => [c.subarray(0, c.length / 2), c.subarray(c.length / 2)];
  const h = relay(src, dst, { idleTimeoutMs: 10_000, aToB: split });
  for (let i = 0; i < CHUNKS; i++) src.push(Buffer.alloc(CHUNK, i));
  await waitFor(() => dst.received === CHUNK * CHUNKS, { message: 'every chunk relayed' });
  h.close();
  return { pauses, received: dst.received };
}

test('relay: a destination that takes both 32 KiB chunks of each read at once never pauses the source', async () => {
  const r = await run(false);
  assert.equal(r.received, CHUNK * CHUNKS);
  // 'pause' also fires once when relay() attaches (a flowing stream is resumed, not paused): 0 here.
  assert.equal(r.pauses, 0);
});

test('relay (negative control): a destination that holds the chunks pauses the source, and all arrive', async () => {
  const r = await run(true);
  assert.equal(r.received, CHUNK * CHUNKS);
  assert.ok(r.pauses >= 1, `expected the source paused at least once, got ${r.pauses}`);
});
