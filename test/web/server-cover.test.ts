/**
 * D14 for the server→client direction: on a Mux.Cool carrier whose client pads its own writes
 * (Ladder's client), the server pads each of its first 8 writes (one write = one WebSocket
 * message = one outer TLS record) to a browsing-like size with a KeepAlive frame, which the
 * client drops: the echoed bytes arrive intact. Writes after the 8th leave unpadded. A client
 * that does not pad (v2ray-plugin; Clash/mihomo, which would misread KeepAlive data) gets no
 * padding. Negative control: the server's cover off gives only small messages even to a padding
 * client (so the test sees padding, not the echo's own size).
 */
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { MuxConnection } from '../../src/transport/mux.js';
import { dialWebSocket } from '../../src/transport/ws-dialer.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { startWsTestServer, tunnelVia, type WsTestServer } from '../helpers/web-server.js';

const METHOD = 'aes-128-gcm';
const PASSWORD = 'server-cover-password';
const PADDED = 8;
/** browsingRecordSize's floor (mux-cover.ts): every padded message is at least this big. */
const MIN_PADDED = 240;
/** An echoed 'ping' in one Shadowsocks chunk and one Keep frame is far below it. */
const SMALL = 120;

let echo: TestServer;
before(async () => {
  echo = await startEcho();
});
after(async () => {
  await echo.close();
});

/** Sizes of the server's WebSocket messages over 12 echoed pings on one Mux.Cool session. */
async function serverMessageSizes(srv: WsTestServer, clientPads: boolean): Promise<number[]> {
  const sizes: number[] = [];
  const hop = async (): Promise<Duplex> => {
    const stream = await dialWebSocket({ url: `ws://127.0.0.1:${srv.webPort}${srv.secretPath}/tcp` });
    stream.ws.on('message', (m: Buffer) => sizes.push(m.length));
    return new MuxConnection(stream, { role: 'client', ...(clientPads ? { cover: {} } : {}) }).open();
  };
  const conn = tunnelVia(srv, { method: METHOD, password: PASSWORD }, hop, echo.port);
  try {
    let got = '';
    for (let i = 0; i < 12; i++) {
      const want = got.length + 4;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`ping ${i}: no echo in 10 s`)), 10_000);
        const onData = (d: Buffer): void => {
          got += d.toString();
          if (got.length >= want) {
            clearTimeout(timer);
            conn.off('data', onData);
            resolve();
          }
        };
        conn.on('data', onData);
        conn.write('ping');
      });
    }
    assert.equal(got, 'ping'.repeat(12), 'the echo arrives intact (the client drops the padding)');
  } finally {
    conn.destroy();
  }
  return sizes;
}

/** The server's message sizes, on a fresh server (its cover on unless `serverCover` is false). */
async function sizesFrom(clientPads: boolean, serverCover?: false): Promise<number[]> {
  const srv = await startWsTestServer({
    keys: [{ id: 'k', method: METHOD, secret: PASSWORD }],
    ...(serverCover === false ? { cover: false } : {}),
  });
  try {
    return await serverMessageSizes(srv, clientPads);
  } finally {
    await srv.close();
  }
}

function assertUnpadded(sizes: number[]): void {
  assert.ok(sizes.length >= 12, `${sizes.length} messages`);
  for (const n of sizes) assert.ok(n < SMALL, `no padding: ${sizes.join(' ')}`);
}

describe('server-side D14 cover on Mux.Cool carriers', () => {
  test('a padding client: the first 8 server messages are padded, the rest are not', async () => {
    const sizes = await sizesFrom(true);
    assert.ok(sizes.length > PADDED, `${sizes.length} messages`);
    for (const [i, n] of sizes.slice(0, PADDED).entries())
      assert.ok(n >= MIN_PADDED, `message ${i} of ${n} bytes is padded: ${sizes.join(' ')}`);
    for (const n of sizes.slice(PADDED)) assert.ok(n < SMALL, `unpadded after ${PADDED}: ${sizes.join(' ')}`);
  });

  test('a client that does not pad gets no padding (Clash-safe)', async () => {
    assertUnpadded(await sizesFrom(false));
  });

  test('negative control: cover off, every server message is small', async () => {
    assertUnpadded(await sizesFrom(true, false));
  });
});
