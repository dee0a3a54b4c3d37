/**
 * The native poll set's turn budget (native/thread_poll.cc): once a loop turn has spent its
 * budget on bulk relays' events, the rest wait for the next turn, which starts where this one
 * stopped. With a budget of 1 µs every turn serves one bulk event, so without that rotation
 * epoll's stable order would serve the same relay every turn and starve the others: here four
 * bulk relays on one thread must each move a fair share. (The budget and the bulk-last order are
 * what keeps short exchanges quick beside downloads: bench:compare --phases mixed.)
 */
process.env.LADDER_POLL_TURN_US = '1';

import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { serve } from '../helpers/net.js';
import { dial } from '../helpers/relay-connect.js';
import { skipUnless } from '../helpers/prereq.js';
import { sleep, waitFor } from '../helpers/wait.js';

const fns = nativeRelay();
const MiB = 1024 * 1024;

describe(
  'the native poll turn budget',
  { skip: skipUnless(fns !== undefined, 'the native addon with relayPair (Linux)') },
  () => {
    it('serves four bulk relays on one thread in rotation: none starves', async () => {
      const block = randomBytes(256 * 1024);
      let pumping = true;
      const src = await serve((s) => {
        const pump = (): void => {
          while (pumping && s.write(block));
          if (pumping) s.once('drain', pump);
          else s.end();
        };
        pump();
      });
      const sinks: net.Socket[] = [];
      const app = await serve((s) => {
        sinks.push(s);
        s.resume();
      });
      const relays: object[] = [];
      const counts = new Float64Array(6);
      const up = (r: object): number => (fns!.relayCounts(r, counts), counts[0]!);
      try {
        for (let i = 0; i < 4; i++) {
          relays.push(
            fns!.relayPair(
              await dial(fns!, src.port),
              await dial(fns!, app.port),
              null,
              null,
              [undefined, undefined, undefined],
              10_000,
              () => undefined,
              3,
            ),
          );
        }
        // Every relay bulk (a read filled), then a second of all four at once.
        await waitFor(() => relays.every((r) => (fns!.relayCounts(r, counts), counts[5] === 1)), {
          timeoutMs: 10_000,
          intervalMs: 5,
        });
        const before = relays.map(up);
        await sleep(1000);
        const moved = relays.map((r, i) => up(r) - before[i]!);
        const most = Math.max(...moved);
        assert.ok(most > 16 * MiB, `the relays moved data (${moved.map((m) => (m / MiB).toFixed(0)).join(' ')} MiB)`);
        for (const m of moved)
          assert.ok(m > most / 8, `each relay moves a fair share (${moved.map((x) => (x / MiB).toFixed(0)).join(' ')} MiB)`);
      } finally {
        pumping = false;
        for (const r of relays) fns!.relayClose(r);
        for (const s of sinks) s.destroy();
        await Promise.all([src.close(), app.close()]);
      }
    });
  },
);
