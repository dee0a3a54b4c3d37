/**
 * A speed limit on the web front: a download over a WebSocket stream of a limited key takes at
 * least (size - burst) / rate; the same download with the limit removed is much faster.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, it } from 'node:test';
import WebSocket from 'ws';
import { AeadDecoder, AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { encodeAddress, toSocksAddress } from '../../src/protocol/socks5/address.js';
import { burstBytes } from '../../src/server/speed-limits.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { startSource, u64, type TestServer } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';

const RATE = 512 * 1024;
const SIZE = 1536 * 1024;
const BOUND_MS = ((SIZE - burstBytes(RATE)) / RATE) * 1000;
const KEY: RuntimeKey = {
  id: `speed-ws-${randomBytes(4).toString('hex')}`,
  method: 'aes-256-gcm',
  secret: `pw-${randomBytes(6).toString('hex')}`,
  speedLimit: RATE,
};

let srv: WsTestServer;
let source: TestServer;
before(async () => {
  [srv, source] = await Promise.all([startWsTestServer({ keys: [KEY] }), startSource({ hash: false })]);
});
after(async () => {
  await Promise.all([srv.close(), source.close()]);
});

/** Download SIZE bytes from the source over one WebSocket stream: the ms it took. */
async function download(): Promise<number> {
  const m = getAeadMethod(KEY.method);
  const key = evpBytesToKey(KEY.secret, m.keySize);
  const request = Buffer.concat([encodeAddress(toSocksAddress('127.0.0.1', source.port)), u64(SIZE)]);
  const wire = new AeadEncoder(m, key).encode(request);
  const decoder = new AeadDecoder(m, key);
  const t0 = Date.now();
  const ws = new WebSocket(`ws://127.0.0.1:${srv.webPort}${srv.secretPath}/tcp`, {
    perMessageDeflate: false,
  });
  let got = 0;
  ws.on('message', (d: Buffer) => {
    const out = decoder.push(d);
    for (const o of Array.isArray(out) ? out : out ? [out] : []) got += o.length;
  });
  try {
    await once(ws, 'open');
    ws.send(Buffer.concat(Array.isArray(wire) ? wire : [wire]));
    await waitFor(() => got >= SIZE, { timeoutMs: 20_000, intervalMs: 5, message: () => `${got} bytes` });
    return Date.now() - t0;
  } finally {
    ws.terminate();
  }
}

it('a WebSocket download of a limited key takes at least (size - burst) / rate; without the limit, much less', async () => {
  const ms = await download();
  assert.ok(ms >= BOUND_MS, `limited download took ${ms} ms, at least ${BOUND_MS} expected`);
  assert.ok(ms < BOUND_MS + 6000, `limited download took ${ms} ms`);
  srv.plane.server.setKeys([{ id: KEY.id, method: KEY.method, secret: KEY.secret }]);
  const fast = await download();
  assert.ok(fast < BOUND_MS / 2, `unlimited download took ${fast} ms`);
});
