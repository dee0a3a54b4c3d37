// What a prober that knows the secret path gets from a gRPC call whose first bytes are garbage
// or a replayed first flight (research D5/D6: one reaction for every failure, no reply, read on):
// 200 application/grpc at once (as for any call), then no DATA while the call stays open; when
// the prober ends its side, the server ends with grpc-status 0 (the FIN answered with a FIN of
// the TCP port and the WebSocket path); a call that never ends is ended at the pre-relay deadline.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { Duplex } from 'node:stream';
import { grpcServiceName } from '../../src/server/web/grpc.js';
import { grpcNextHop } from '../../src/transport/grpc-dialer.js';
import { encodeHunk } from '../../src/transport/grpc-stream.js';
import { echoThrough } from '../helpers/grpc-echo.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';

const KEY = { id: 'k', method: 'aes-256-gcm', secret: `probe-${randomBytes(6).toString('hex')}` };
const IDLE_MS = 1500;
let srv: WsTestServer;
let echo: TestServer;

before(async () => {
  echo = await startEcho();
  srv = await startWsTestServer({ keys: [KEY], idleMs: IDLE_MS, front: { grpc: true } });
});
after(async () => {
  await srv?.close();
  await echo?.close();
});

interface Reaction {
  status: string;
  data: number;
  openAfterSend: boolean;
  trailers: string | undefined;
  rstCode: number | undefined;
  closedAfterMs: number;
}

/** One call carrying `bytes` in a Hunk; the prober ends its side after 500 ms unless `hold`. */
async function probe(bytes: Buffer, hold = false): Promise<Reaction> {
  const session = http2.connect(`http://127.0.0.1:${srv.webPort}`);
  session.on('error', () => {});
  try {
    const call = session.request({
      ':method': 'POST',
      ':path': `${srv.secretPath}/Tun`,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    call.on('error', () => {});
    let status = '';
    let data = 0;
    let trailers: string | undefined;
    call.on('response', (h) => (status = `${h[':status']} ${h['content-type']}`));
    call.on('trailers', (h) => (trailers = String(h['grpc-status'])));
    call.on('data', (b: Buffer) => (data += b.length));
    const closed = new Promise<number>((resolve) => call.once('close', () => resolve(Date.now())));
    call.write(encodeHunk(bytes));
    await sleep(500);
    const openAfterSend = !call.closed;
    const t0 = Date.now();
    if (!hold) call.end();
    const t1 = await Promise.race([closed, sleep(IDLE_MS + 3000).then(() => Date.now() + 1e6)]);
    return {
      status,
      data,
      openAfterSend,
      trailers,
      rstCode: call.rstCode,
      closedAfterMs: hold ? 0 : t1 - t0,
    };
  } finally {
    session.destroy();
  }
}

test(
  'garbage of several lengths and a replayed first flight: one reaction, no reply',
  { timeout: 30_000 },
  async () => {
    // The replay: the first flight of a real tunnel, recorded on its way into the call.
    const flights: Buffer[] = [];
    const hop = grpcNextHop({
      address: '127.0.0.1',
      port: srv.webPort,
      tls: false,
      serviceName: grpcServiceName(srv.secretPath),
    });
    const recording = async (signal?: AbortSignal): Promise<Duplex> => {
      const s = await hop(signal);
      const write = s.write.bind(s) as (c: Buffer, ...rest: unknown[]) => boolean;
      s.write = ((c: Buffer, ...rest: unknown[]) => (
        flights.push(Buffer.from(c)),
        write(c, ...rest)
      )) as typeof s.write;
      return s;
    };
    try {
      assert.equal((await echoThrough(recording, KEY, echo.port, Buffer.from('real'))).toString(), 'real');
    } finally {
      hop.close();
    }
    const probes: Array<[string, Buffer]> = [
      ['1 byte', randomBytes(1)],
      ['50 bytes', randomBytes(50)],
      ['221 bytes', randomBytes(221)],
      ['1000 bytes', randomBytes(1000)],
      ['replay', flights[0]!],
    ];
    const control: Reaction = {
      status: '200 application/grpc',
      data: 0,
      openAfterSend: true,
      trailers: '0',
      rstCode: 0,
      closedAfterMs: 0,
    };
    for (const [name, bytes] of probes) {
      const r = await probe(bytes);
      assert.ok(r.closedAfterMs < 400, `${name}: the prober's end answered at once (${r.closedAfterMs} ms)`);
      assert.deepEqual({ ...r, closedAfterMs: 0 }, control, name);
    }
  },
);

test(
  'a garbage call left open is ended at the pre-relay deadline, as a replay is',
  { timeout: 30_000 },
  async () => {
    for (const bytes of [randomBytes(60), randomBytes(2)]) {
      const r = await probe(bytes, true);
      assert.equal(r.data, 0);
      assert.equal(r.openAfterSend, true);
      assert.equal(r.trailers, '0', 'ended with grpc-status 0 at the deadline');
    }
  },
);
