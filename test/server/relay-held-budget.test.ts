/**
 * The relay's budget for bytes held for slow readers (native/relay_pair.cc, t_held): each relay
 * keeps at most one read's output for a reader that does not take it (64 KiB to 1 MiB), and past
 * the thread's budget (LADDER_RELAY_HELD_MIB, 64; 1 here) every read on the thread takes 64 KiB, so
 * many readers that stop right after their reads grew cannot pin a MiB each. relayCounts' fifth
 * element is the next read's size toward the destination side.
 */
process.env.LADDER_RELAY_HELD_MIB = '1';

import type net from 'node:net';
import { describe, it } from 'node:test';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { serve } from '../helpers/net.js';
import { endlessSourceAndSink, relayPorts } from '../helpers/relay-connect.js';
import { skipUnless } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

const fns = nativeRelay();
const KiB = 1024;
const MiB = 1024 * KiB;

describe(
  'the relay budget for bytes held for slow readers',
  { skip: skipUnless(fns !== undefined, 'the native addon with relayPair (Linux)') },
  () => {
    it('past it a fast relay reads 64 KiB; back to 1 MiB once the slow readers are gone', async () => {
      const flow = await endlessSourceAndSink();
      const stalled: net.Socket[] = [];
      const slow = await serve((s) => {
        stalled.push(s);
        s.pause();
      });
      const counts = new Float64Array(6);
      const fast = await relayPorts(fns!, flow.src.port, flow.sink.port);
      const cap = (r: object): number => (fns!.relayCounts(r, counts), counts[4]!);
      const held: object[] = [];
      try {
        await waitFor(() => cap(fast) === MiB, { timeoutMs: 10_000, intervalMs: 5 });
        // Readers that never read: each relay fills their socket, then keeps one read's output.
        for (let i = 0; i < 32; i++) held.push(await relayPorts(fns!, flow.src.port, slow.port));
        await waitFor(() => cap(fast) === 64 * KiB, { timeoutMs: 10_000, intervalMs: 5 });
        for (const r of held) fns!.relayClose(r);
        held.length = 0;
        await waitFor(() => cap(fast) === MiB, { timeoutMs: 10_000, intervalMs: 5 });
      } finally {
        for (const r of held) fns!.relayClose(r);
        fns!.relayClose(fast);
        for (const s of stalled) s.destroy();
        await Promise.all([flow.stop(), slow.close()]);
      }
    });
  },
);
