/**
 * The relay's read size (native/relay_pair.cc, session 17): reads take up to 1 MiB while the
 * other side takes whole what each read gave it (fewer system calls and wake-ups per GiB), and
 * halve, down to 64 KiB, for every send a side does not take whole (a slow reader), so what a
 * stalled relay holds for it in user space shrinks with what its socket takes. relayCounts' fourth
 * and fifth elements are the caps of the next read for the client and for the destination. Bytes
 * decoded for a slow reader (a remainder kept after each partial send) must still arrive whole and
 * in order.
 * While the thread also serves short exchanges (any native watch not marked bulk had an event in
 * the last 100 ms), a bulk relay reads at most 128 KiB, so a loop turn (at least one bulk read)
 * stays short for them: relayCounts' sixth element says the relay is bulk.
 */
import { createHash, randomBytes } from 'node:crypto';
import type net from 'node:net';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { serve } from '../helpers/net.js';
import { dial, endlessSourceAndSink, relayPorts } from '../helpers/relay-connect.js';
import { skipUnless } from '../helpers/prereq.js';
import { sleep, waitFor } from '../helpers/wait.js';

const fns = nativeRelay();
const KiB = 1024;
const MiB = 1024 * KiB;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
type Codecs = {
  create(m: number, k: Uint8Array, enc: boolean): object;
  encode(c: object, d: Uint8Array): Buffer;
};

/**
 * `wire` sent at once by a server the relay's `from` side dials, relayed (with `codecs`, or none)
 * to a reader on the other side that reads 16 KiB every 5 ms for a while, then all: the caps of the
 * reads for the reader over the slow phase and the largest seen in the fast one, and what it got.
 */
async function slowReader(
  wire: Buffer,
  total: number,
  from: 0 | 1,
  codecs: [object, object] | null,
): Promise<{ slow: number[]; fast: number; got: Buffer }> {
  const src = await serve((s) => s.end(wire));
  let reader: net.Socket | undefined;
  const app = await serve((s) => {
    reader = s;
    s.pause();
  });
  const got: Buffer[] = [];
  let gotBytes = 0;
  const counts = new Float64Array(5);
  let reason = -1;
  const fds = [await dial(fns!, src.port), await dial(fns!, app.port)];
  if (from === 1) fds.reverse();
  const relay = fns!.relayPair(
    fds[0]!,
    fds[1]!,
    codecs?.[0] ?? null,
    codecs?.[1] ?? null,
    [undefined, undefined, undefined],
    10_000,
    (r) => {
      reason = r;
    },
    3,
  );
  const cap = (): number => (fns!.relayCounts(relay, counts), counts[4 - from]!);
  try {
    await waitFor(() => reader !== undefined, { timeoutMs: 5000 });
    const slow: number[] = [];
    for (let i = 0; i < 100; i++) {
      let chunk: Buffer | null;
      let n = 0;
      while (n < 16 * KiB && (chunk = reader!.read() as Buffer | null) !== null) {
        got.push(chunk);
        n += chunk.length;
      }
      gotBytes += n;
      slow.push(cap());
      await sleep(5);
    }
    reader!.on('data', (c: Buffer) => {
      got.push(c);
      gotBytes += c.length;
    });
    reader!.resume();
    let fast = 0;
    await waitFor(
      () => {
        if (reason < 0) fast = Math.max(fast, cap());
        return gotBytes >= total;
      },
      { timeoutMs: 30_000, intervalMs: 1 },
    );
    return { slow, fast, got: Buffer.concat(got) };
  } finally {
    fns!.relayClose(relay);
    reader?.destroy();
    await Promise.all([src.close(), app.close()]);
  }
}

describe(
  'the relay read size',
  { skip: skipUnless(fns !== undefined, 'the native addon with relayPair (Linux)') },
  () => {
    it('shrinks for a slow reader, grows back for a fast one, and every byte arrives in order', async () => {
      const body = randomBytes(24 * MiB);
      const { slow, fast, got } = await slowReader(body, body.length, 1, null);
      assert.ok(Math.min(...slow) <= MiB / 2, `the cap for a slow reader shrinks (${slow.join(' ')})`);
      assert.equal(sha(got), sha(body), 'every byte, in order');
      assert.equal(fast, MiB, 'the cap grows back to 1 MiB once the reader keeps up');
    });

    it('decoded bytes for a slow destination arrive whole and in order, its cap shrinking too', async () => {
      const addon = fns as unknown as Codecs;
      const key = randomBytes(32);
      const body = randomBytes(24 * MiB);
      const wire = addon.encode(addon.create(1, key, true), body);
      const codecs: [object, object] = [addon.create(1, key, false), addon.create(1, randomBytes(32), true)];
      const { slow, got } = await slowReader(wire, body.length, 0, codecs);
      assert.ok(Math.min(...slow) <= MiB / 2, `the cap for a slow destination shrinks (${slow.join(' ')})`);
      assert.equal(sha(got), sha(body), 'every byte, in order');
    });

    it('a bulk relay reads at most 128 KiB while a short exchange runs on its thread, 1 MiB again after', async () => {
      const flow = await endlessSourceAndSink();
      let ticking: NodeJS.Timeout | undefined;
      const chatty = await serve((s) => {
        ticking = setInterval(() => s.write('tick'), 20);
        s.on('close', () => clearInterval(ticking));
      });
      const counts = new Float64Array(6);
      const bulk = await relayPorts(fns!, flow.src.port, flow.sink.port);
      let short: object | undefined;
      const read = (): [number, number] => (fns!.relayCounts(bulk, counts), [counts[4]!, counts[5]!]);
      try {
        await waitFor(() => read()[0] === MiB && read()[1] === 1, { timeoutMs: 10_000, intervalMs: 5 });
        short = await relayPorts(fns!, chatty.port, flow.sink.port);
        await waitFor(() => read()[0] === 128 * KiB, { timeoutMs: 5000, intervalMs: 5 });
        assert.equal(read()[1], 1, 'still bulk');
        fns!.relayCounts(short, counts);
        assert.equal(counts[5], 0, 'the relay of a few bytes at a time is not bulk');
        fns!.relayClose(short);
        short = undefined;
        await waitFor(() => read()[0] === MiB, { timeoutMs: 5000, intervalMs: 5 });
      } finally {
        if (short) fns!.relayClose(short);
        fns!.relayClose(bulk);
        clearInterval(ticking);
        await Promise.all([flow.stop(), chatty.close()]);
      }
    });
  },
);
