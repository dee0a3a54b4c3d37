/**
 * The client's native SOCKS5 front out of descriptors (native/socks5_front.cc): when accept4
 * fails with EMFILE the front stops polling the listener for a while (50 ms doubling to 1 s)
 * instead of spinning on a listener that stays readable, and the connections left in the backlog
 * are accepted and answered once descriptors are free again. The client runs as a child under
 * `ulimit -n 128`; the test's own limit is untouched. Without the back-off the child's event loop
 * is busy the whole time (utilisation near 1) and the utilisation check fails.
 */
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nativeSocksFront } from '../../src/transport/native-sockets.js';
import { startLowFdChild } from '../helpers/low-fd-child.js';
import { skipUnless } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

const NEED = 'the native addon with socks5Front (Linux; npm run build:native)';
const CONNS = 200;

/** Resolves with what `s` received within `ms` (empty when nothing came). */
function firstBytes(s: net.Socket, ms: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const done = (): void => {
      clearTimeout(t);
      s.off('data', onData);
      resolve(Buffer.concat(got));
    };
    const onData = (b: Buffer): void => {
      got.push(b);
      if (Buffer.concat(got).length >= 2) done();
    };
    const t = setTimeout(done, ms);
    s.on('data', onData);
  });
}

describe(
  'native SOCKS5 front out of descriptors',
  { skip: skipUnless(nativeSocksFront() !== undefined, NEED) },
  () => {
    it('EMFILE: the front backs off instead of spinning, and answers the backlog once descriptors free', async () => {
      const kid = await startLowFdChild('test/helpers/emfile-client.ts', 128);
      const ask = async (ms: number): Promise<{ fds: number; elu: number }> => {
        const { elu } = await kid.ask<{ elu: number }>(String(ms));
        return { elu, fds: readdirSync(`/proc/${kid.child.pid}/fd`).length };
      };
      const socks: net.Socket[] = [];
      try {
        const port = kid.port;
        const before = (await ask(0)).fds;
        for (let i = 0; i < CONNS; i++) {
          const c = net.connect(port, '127.0.0.1');
          c.on('error', () => {});
          socks.push(c);
        }
        // Accepted until out of descriptors (the rest wait in the kernel's backlog).
        let fds = 0;
        await waitFor(
          async () => {
            const now = (await ask(100)).fds;
            const steady = now === fds && now > before;
            fds = now;
            return steady;
          },
          { timeoutMs: 10_000 },
        );
        const held = fds - before;
        assert.ok(held < CONNS, `EMFILE reached (${held} accepted of ${CONNS})`);
        const { elu } = await ask(1000);
        assert.ok(elu < 0.5, `the loop waits while out of descriptors (utilisation ${elu.toFixed(3)})`);
        // Free the child's descriptors: close the connections it holds (the oldest were accepted
        // first; closing more than it holds is harmless), then every remaining one must be served.
        for (const c of socks.splice(0, held + 10)) c.destroy();
        for (const c of socks) c.write(Buffer.from([5, 1, 0])); // no-auth greeting
        const answers = await Promise.all(socks.map((c) => firstBytes(c, 10_000)));
        const answered = answers.filter((b) => b.subarray(0, 2).equals(Buffer.from([5, 0]))).length;
        assert.equal(
          answered,
          socks.length,
          `the backlog is answered once descriptors free (${answered}/${socks.length})`,
        );
      } finally {
        for (const c of socks) c.destroy();
        await kid.stop();
      }
    });
  },
);
