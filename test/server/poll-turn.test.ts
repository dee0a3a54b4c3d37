/**
 * The native poll set's turn budget (native/thread_poll.cc): once a loop turn has spent its
 * budget on bulk relays' events, the rest wait for the next turn, which starts where this one
 * stopped. With a budget of 1 µs every turn serves one bulk event, so without that rotation
 * epoll's stable order would serve the same relay every turn and starve the others: here four
 * bulk relays on one thread must each move a fair share. (The budget and the bulk-last order are
 * what keeps short exchanges quick beside downloads: bench:compare --phases mixed.)
 */
process.env.LADDER_POLL_TURN_US = '1';

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { endlessSourceAndSink, relayPorts } from '../helpers/relay-connect.js';
import { skipUnless } from '../helpers/prereq.js';
import { sleep, waitFor } from '../helpers/wait.js';

const fns = nativeRelay();
const MiB = 1024 * 1024;

describe(
  'the native poll turn budget',
  { skip: skipUnless(fns !== undefined, 'the native addon with relayPair (Linux)') },
  () => {
    it('serves four bulk relays on one thread in rotation: none starves', async () => {
      const flow = await endlessSourceAndSink();
      const relays: object[] = [];
      const counts = new Float64Array(6);
      const up = (r: object): number => (fns!.relayCounts(r, counts), counts[0]!);
      try {
        for (let i = 0; i < 4; i++) relays.push(await relayPorts(fns!, flow.src.port, flow.sink.port));
        // Every relay bulk (a read filled), then a second of all four at once.
        await waitFor(() => relays.every((r) => (fns!.relayCounts(r, counts), counts[5] === 1)), {
          timeoutMs: 10_000,
          intervalMs: 5,
        });
        const before = relays.map(up);
        await sleep(1000);
        const moved = relays.map((r, i) => up(r) - before[i]!);
        const shown = moved.map((m) => (m / MiB).toFixed(0)).join(' ');
        const most = Math.max(...moved);
        assert.ok(most > 16 * MiB, `the relays moved data (${shown} MiB)`);
        for (const m of moved) assert.ok(m > most / 8, `each relay moves a fair share (${shown} MiB)`);
      } finally {
        for (const r of relays) fns!.relayClose(r);
        await flow.stop();
      }
    });
  },
);
