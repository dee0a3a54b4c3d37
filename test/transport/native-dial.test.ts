/**
 * connectNative (src/transport/native-dial.ts): the addon's TCP connect for the client's native
 * SOCKS5 front, with connectTcp's abort semantics.
 */
import net from 'node:net';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connectNative } from '../../src/transport/native-dial.js';
import { nativeSocksFront } from '../../src/transport/native-sockets.js';
import { skipUnless } from '../helpers/prereq.js';

const fns = nativeSocksFront();
const skip = skipUnless(fns !== undefined, 'the native addon with tcpConnect (Linux; npm run build:native)');

describe('connectNative', { skip, timeout: 30_000 }, () => {
  for (const abortDuringLookup of [true, false]) {
    it(
      abortDuringLookup
        ? 'aborted while the name is being looked up: rejects ERR_ABORTED, nothing connects'
        : 'not aborted (control): a name connects',
      async () => {
        let accepted = 0;
        const srv = net.createServer((s) => (accepted++, s.destroy()));
        await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
        const port = (srv.address() as net.AddressInfo).port;
        try {
          const ac = new AbortController();
          const p = connectNative(fns!, 'localhost', port, 5000, ac.signal);
          if (abortDuringLookup) ac.abort(); // the lookup has not answered yet
          const r = await p.then(
            (fd) => (fns!.fdClose(fd), 'connected'),
            (e: { code?: string }) => e.code,
          );
          assert.equal(r, abortDuringLookup ? 'ERR_ABORTED' : 'connected');
          await new Promise((res) => setTimeout(res, 100));
          assert.equal(accepted, abortDuringLookup ? 0 : 1);
        } finally {
          srv.close();
        }
      },
    );
  }
});
