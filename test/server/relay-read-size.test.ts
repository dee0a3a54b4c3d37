/**
 * The relay's read size (native/relay_pair.cc, session 17): reads take up to 1 MiB while the
 * other side takes whole what each read gave it (fewer system calls and wake-ups per GiB), and
 * halve, down to 64 KiB, for every send a side does not take whole (a slow reader), so what a
 * stalled relay holds for it in user space shrinks with what its socket takes. relayCounts' fourth and fifth elements are
 * the caps of the next read for the client and for the destination.
 */
import { createHash, randomBytes } from 'node:crypto';
import type net from 'node:net';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { serve } from '../helpers/net.js';
import { dial } from '../helpers/relay-connect.js';
import { skipUnless } from '../helpers/prereq.js';
import { sleep, waitFor } from '../helpers/wait.js';

const fns = nativeRelay();
const KiB = 1024;
const MiB = 1024 * KiB;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe(
  'the relay read size',
  { skip: skipUnless(fns !== undefined, 'the native addon with relayPair (Linux)') },
  () => {
    it('shrinks for a slow reader, grows back for a fast one, and every byte arrives in order', async () => {
      const total = 24 * MiB;
      const body = randomBytes(total);
      // The destination sends `total` bytes at once; the "client" (the relay's side 0) reads slowly
      // at first (16 KiB every 5 ms), then as fast as it can.
      const dest = await serve((s) => s.end(body));
      let reader: net.Socket | undefined;
      const got: Buffer[] = [];
      let gotBytes = 0;
      const app = await serve((s) => {
        reader = s;
        s.pause();
      });
      const counts = new Float64Array(5);
      let reason = -1;
      const relay = fns!.relayPair(
        await dial(fns!, app.port),
        await dial(fns!, dest.port),
        null,
        null,
        [undefined, undefined, undefined],
        10_000,
        (r) => {
          reason = r;
        },
        3,
      );
      try {
        await waitFor(() => reader !== undefined, { timeoutMs: 5000 });
        fns!.relayCounts(relay, counts);
        assert.equal(counts[3], MiB, 'a read for the client takes up to 1 MiB at first');
        const caps: number[] = [];
        for (let i = 0; i < 100; i++) {
          let chunk: Buffer | null;
          let n = 0;
          while (n < 16 * KiB && (chunk = reader!.read() as Buffer | null) !== null) {
            got.push(chunk);
            n += chunk.length;
          }
          gotBytes += n;
          fns!.relayCounts(relay, counts);
          caps.push(counts[3]!);
          await sleep(5);
        }
        assert.ok(Math.min(...caps) <= MiB / 2, `the cap for a slow reader shrinks (${caps.join(' ')})`);
        reader!.on('data', (c: Buffer) => {
          got.push(c);
          gotBytes += c.length;
        });
        reader!.resume();
        let grown = 0;
        await waitFor(
          () => {
            if (reason < 0) {
              fns!.relayCounts(relay, counts);
              grown = Math.max(grown, counts[3]!);
            }
            return gotBytes >= total;
          },
          { timeoutMs: 30_000, intervalMs: 1 },
        );
        assert.equal(sha(Buffer.concat(got)), sha(body), 'every byte, in order');
        assert.equal(grown, MiB, 'the cap grows back to 1 MiB once the reader keeps up');
      } finally {
        fns!.relayClose(relay);
        reader?.destroy();
        await Promise.all([dest.close(), app.close()]);
      }
    });
  },
);
