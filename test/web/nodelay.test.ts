/**
 * No Nagle stall on the WebSocket+TLS path: Ladder's client (ws dialer, with and without
 * Mux.Cool) → the real web front with TLS → the server → a destination, on loopback. The
 * exchange is the pattern Nagle's algorithm and delayed ACKs punish: the application sends a
 * request in two small writes a millisecond apart and the destination answers, once it has both,
 * in two small writes a millisecond apart. With TCP_NODELAY on every socket a round trip takes well under a
 * millisecond; with Nagle on either TLS socket the second write waits for the peer's delayed ACK
 * (Linux: at least 40 ms), so nearly every round trip carries that step whatever the load.
 * The assertion is on the 25th percentile of 40 round trips: load only adds delay, so a fast
 * quarter cannot come from load, and a stalled path cannot produce one. Negative controls: the
 * same exchange with Nagle forced back on the client's TLS socket, then on the server's, shows
 * the step (so the test can see one).
 */
import assert from 'node:assert/strict';
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { makeLabCertificates, type LabCertificates } from '../../src/lab/lab-ca.js';
import { MuxConnection } from '../../src/transport/mux.js';
import { dialWebSocket } from '../../src/transport/ws-dialer.js';
import { startWsTestServer, tunnelVia, type WsTestServer } from '../helpers/web-server.js';
import { opensslSkip } from './fixtures.js';

const SKIP = opensslSkip();
const HOST = 'front.nodelay.test';
const METHOD = 'chacha20-ietf-poly1305';
const PASSWORD = 'nodelay-password';
const ROUNDS = 40;
const WARMUP = 4;
/** Between the two writes: long enough that the relay in between reads them apart. */
const GAP_MS = 1;
/**
 * Below this a quarter of the round trips must fall without a stall: a stalled round trip takes
 * the 40 ms delayed ACK and more, so a stalling path cannot put its 25th percentile here, while a
 * loaded machine can take a fast one past 20 ms (22 ms with two busy loops beside the suite)...
 */
const FAST_MS = 30;
/** ...and at or above this with one (Linux's delayed ACK is at least 40 ms). */
const STALL_MS = 35;

let certs: LabCertificates;
let srv: WsTestServer;
let dest: net.Server;
let destPort = 0;
/** Nagle back on the server's socket of the next accepted upgrade (negative control). */
let serverNagle = false;

before(async () => {
  if (SKIP) return;
  certs = await makeLabCertificates([HOST]);
  srv = await startWsTestServer({
    keys: [{ id: 'k', method: METHOD, secret: PASSWORD }],
    front: { tls: { cert: certs.cert, key: certs.key } },
    onAccepted: (s) => {
      if (serverNagle) s.setNoDelay(false);
    },
  });
  // Two bytes in, then 'x' and, a millisecond later, 'y' out.
  dest = net.createServer((s) => {
    s.setNoDelay(true);
    let n = 0;
    s.on('data', (d: Buffer) => {
      n += d.length;
      for (; n >= 2; n -= 2) {
        s.write('x');
        setTimeout(() => s.writable && s.write('y'), GAP_MS);
      }
    });
    s.on('error', () => s.destroy());
  });
  await new Promise<void>((r) => dest.listen(0, '127.0.0.1', r));
  destPort = (dest.address() as AddressInfo).port;
});

after(async () => {
  if (SKIP) return;
  await srv?.close();
  await new Promise((r) => dest?.close(r));
});

/** The 25th percentile of ROUNDS two-write round trips through a fresh tunnel, in ms. */
async function quartileRoundTrip(opts: { mux: boolean; clientNagle: boolean }): Promise<number> {
  const hop = async (): Promise<Duplex> => {
    const stream = await dialWebSocket({
      url: `wss://127.0.0.1:${srv.webPort}${srv.secretPath}/tcp`,
      host: HOST,
      ca: certs.ca,
    });
    if (opts.clientNagle) (stream.ws as unknown as { _socket: Socket })._socket.setNoDelay(false);
    return opts.mux ? new MuxConnection(stream, { role: 'client' }).open() : stream;
  };
  const conn = tunnelVia(srv, { method: METHOD, password: PASSWORD }, hop, destPort);
  const times: number[] = [];
  try {
    let got = 0;
    let wake: (() => void) | undefined;
    conn.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= 2 && wake) {
        got -= 2;
        const w = wake;
        wake = undefined;
        w();
      }
    });
    for (let i = 0; i < WARMUP + ROUNDS; i++) {
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`round trip ${i} got no answer in 10 s`)), 10_000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
        conn.once('error', reject);
        conn.write('a');
        setTimeout(() => conn.write('b'), GAP_MS);
      });
      if (i >= WARMUP) times.push(performance.now() - t0);
    }
  } finally {
    conn.destroy();
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 4)]!;
}

describe('WebSocket+TLS tunnel: no Nagle/delayed-ACK stall', { skip: SKIP }, () => {
  for (const mux of [false, true]) {
    test(`two-write round trips stay fast (${mux ? 'Mux.Cool' : 'one WebSocket per stream'})`, async () => {
      const q = await quartileRoundTrip({ mux, clientNagle: false });
      assert.ok(q < FAST_MS, `25th percentile round trip ${q.toFixed(1)} ms, expected < ${FAST_MS} ms`);
    });
  }

  test('negative control: Nagle on the client TLS socket shows the delayed-ACK step', async () => {
    const q = await quartileRoundTrip({ mux: true, clientNagle: true });
    assert.ok(q >= STALL_MS, `25th percentile round trip ${q.toFixed(1)} ms, expected >= ${STALL_MS} ms`);
  });

  test('negative control: Nagle on the server TLS socket shows the delayed-ACK step', async () => {
    serverNagle = true;
    try {
      const q = await quartileRoundTrip({ mux: false, clientNagle: false });
      assert.ok(q >= STALL_MS, `25th percentile round trip ${q.toFixed(1)} ms, expected >= ${STALL_MS} ms`);
    } finally {
      serverNagle = false;
    }
  });
});
