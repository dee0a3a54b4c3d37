/**
 * Differential fuzzing of the native SOCKS5 front (native/socks5_front.cc) against the JS parsers
 * (src/protocol/socks5): mutated greetings and CONNECT requests, one connection each, in turn.
 * Whatever the front hands over as a parsed CONNECT must be what parseGreeting/parseRequest read
 * from the same bytes (no-auth offered, command CONNECT, the same address); every connection ends
 * within a bound, and no handshake is left live in the front. Method and counts: test/fuzz/fuzz.ts.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { nativeSocksFront } from '../../src/transport/native-sockets.js';
import { decodeAddress, toSocksAddress } from '../../src/protocol/socks5/address.js';
import {
  encodeGreeting,
  encodeRequest,
  parseGreeting,
  parseRequest,
} from '../../src/protocol/socks5/socks5.js';
import { skipUnless } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { byteCases, show } from './fuzz.js';

const fns = nativeSocksFront();
const KIND_CONNECT = 2;

/** What the JS parsers make of `b` as a no-auth CONNECT: the address, or undefined. */
function jsConnect(b: Buffer): string | undefined {
  try {
    const g = parseGreeting(b);
    if (!g || !g.methods.includes(0)) return undefined;
    const r = parseRequest(b.subarray(g.length));
    if (!r || r.command !== 1) return undefined;
    return JSON.stringify(r.address);
  } catch {
    return undefined;
  }
}

test(
  'fuzz: native SOCKS5 front parses as the JS parsers do, and ends every connection',
  { skip: skipUnless(fns !== undefined, 'the native addon with socks5Front (Linux; npm run build:native)') },
  async (t) => {
    const a = fns!;
    const handed: Array<{ kind: number; addr: string | undefined }> = [];
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    const fd = (srv as unknown as { _handle: { fd: number } })._handle.fd;
    const front = a.socks5Front(fd, 5, 1000, (cfd, kind, addr) => {
      let shown: string | undefined;
      try {
        const d = addr ? decodeAddress(addr, 0) : undefined;
        shown = d ? JSON.stringify(d.address) : `undecodable ${addr?.toString('hex')}`;
      } catch (err) {
        shown = `throws ${(err as Error).message}`;
      }
      handed.push({ kind, addr: shown });
      a.fdClose(cfd);
    });
    srv.close();
    t.after(() => a.socks5FrontClose(front));

    const samples = [
      Buffer.concat([
        encodeGreeting([0]),
        encodeRequest(1, toSocksAddress('example.com', 443)),
        Buffer.from('GET'),
      ]),
      Buffer.concat([encodeGreeting([2, 0, 1]), encodeRequest(1, toSocksAddress('2001:db8::7', 80))]),
      Buffer.concat([encodeGreeting([0]), encodeRequest(1, toSocksAddress('192.0.2.9', 8080))]),
    ];
    let connects = 0;
    for (const c of byteCases('native-front', samples, 200)) {
      const before = handed.length;
      await new Promise<void>((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        const timer = setTimeout(() => {
          s.destroy();
          reject(new Error(`front kept the connection open for ${show(c)}`));
        }, 5000);
        s.on('error', () => {});
        s.on('data', () => {});
        s.on('close', () => {
          clearTimeout(timer);
          resolve();
        });
        s.end(c);
      });
      // The callback may come just after the close.
      await new Promise((r) => setImmediate(r));
      const got = handed.slice(before);
      assert.ok(got.length <= 1, `two hand-overs for one connection: ${show(c)}`);
      if (got[0]?.kind === KIND_CONNECT) {
        connects++;
        assert.equal(got[0].addr, jsConnect(c), `native CONNECT differs from the JS parse of ${show(c)}`);
      }
    }
    assert.ok(connects > 50, `only ${connects} cases reached a CONNECT`);
    await waitFor(() => a.socks5FrontLive(front) === 0, {
      timeoutMs: 5000,
      message: () => 'handshakes left live in the front',
    });
  },
);
