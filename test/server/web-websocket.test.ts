/**
 * The WebSocket endpoints (src/server/web/websocket.ts) behind a stand-in web front: which
 * upgrades they take, Xray's early data, the query string, and the uniform reaction to garbage on
 * both dialects (no bytes back; the WebSocket open until the idle timeout or the peer's close).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { encodeMuxFrame, MuxNetwork, MuxStatus } from '../../src/protocol/muxcool.js';
import { AeadDecoder, AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { decodeUdp2017, encodeUdp2017 } from '../../src/protocol/shadowsocks/udp.js';
import { encodeAddress, toSocksAddress } from '../../src/protocol/socks5/address.js';
import { startUdpEcho } from '../../src/transport/udp-socks5.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';

const METHOD = 'aes-256-gcm';
const PASSWORD = `ws-${randomBytes(6).toString('hex')}`;
const IDLE_MS = 1500;
let srv: WsTestServer;
let echo: TestServer;
before(async () => {
  srv = await startWsTestServer({ keys: [{ id: 'k', method: METHOD, secret: PASSWORD }], idleMs: IDLE_MS });
  echo = await startEcho();
});
after(async () => {
  await Promise.all([srv.close(), echo.close()]);
});

function firstPacket(data: Buffer): { wire: Buffer; decoder: AeadDecoder } {
  const m = getAeadMethod(METHOD);
  const key = evpBytesToKey(PASSWORD, m.keySize);
  const enc = new AeadEncoder(m, key);
  const wire = enc.encode(Buffer.concat([encodeAddress(toSocksAddress('127.0.0.1', echo.port)), data]));
  return { wire: Buffer.concat(Array.isArray(wire) ? wire : [wire]), decoder: new AeadDecoder(m, key) };
}

function open(path: string, protocol?: string): WebSocket {
  return new WebSocket(`ws://127.0.0.1:${srv.webPort}${path}`, protocol ? [protocol] : [], {
    perMessageDeflate: false,
  });
}

/** Plaintext the server sends back on `ws`, decrypted. */
function collect(ws: WebSocket, decoder: AeadDecoder): { text: () => string; raw: () => number } {
  let text = '';
  let raw = 0;
  ws.on('message', (d: Buffer) => {
    raw += d.length;
    const out = decoder.push(d);
    for (const o of Array.isArray(out) ? out : out ? [out] : []) text += o.toString();
  });
  return { text: () => text, raw: () => raw };
}

test('Xray early data in Sec-WebSocket-Protocol is echoed and used; the query string is ignored', async () => {
  const { wire, decoder } = firstPacket(Buffer.from('early bytes'));
  const proto = wire.toString('base64url');
  const ws = open(`${srv.secretPath}/tcp?ed=2560`, proto);
  const got = collect(ws, decoder);
  await once(ws, 'open');
  assert.equal(ws.protocol, proto);
  await waitFor(() => got.text() === 'early bytes');
  ws.terminate();
});

test('the bare secret path is a stream endpoint too; other paths and malformed upgrades are refused', async () => {
  const { wire, decoder } = firstPacket(Buffer.from('bare'));
  const ws = open(srv.secretPath);
  const got = collect(ws, decoder);
  await once(ws, 'open');
  ws.send(wire);
  await waitFor(() => got.text() === 'bare');
  ws.terminate();
  for (const path of ['/', `${srv.secretPath}x`, `${srv.secretPath}/tcpx`, `/other${srv.secretPath}`]) {
    const bad = open(path);
    bad.on('error', () => {});
    const [, res] = (await once(bad, 'unexpected-response')) as [unknown, { statusCode: number }];
    assert.equal(res.statusCode, 404, path);
    bad.terminate();
  }
  // A request on the right path that is not a valid WebSocket upgrade (no key) is left to the front.
  const s = net.connect(srv.webPort, '127.0.0.1');
  s.write(
    `GET ${srv.secretPath}/tcp HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
  );
  const [d] = (await once(s, 'data')) as [Buffer];
  assert.match(d.toString(), /^HTTP\/1\.1 404/);
  s.destroy();
});

for (const [name, garbage] of [
  ['raw', randomBytes(300)],
  [
    'Mux.Cool',
    Buffer.concat([
      encodeMuxFrame(
        {
          sessionId: 1,
          status: MuxStatus.New,
          option: 0,
          target: { network: MuxNetwork.Tcp, host: '127.0.0.1', port: 0 },
        },
        randomBytes(100),
      ),
      encodeMuxFrame({ sessionId: 1, status: MuxStatus.Keep, option: 0 }, randomBytes(200)),
    ]),
  ],
] as const) {
  test(`garbage on a ${name} WebSocket gets no bytes; closed only by the idle timeout`, async () => {
    const ws = open(`${srv.secretPath}/tcp`);
    let received = 0;
    ws.on('message', (d: Buffer) => (received += d.length));
    await once(ws, 'open');
    const t0 = Date.now();
    ws.send(garbage);
    await sleep(IDLE_MS / 2);
    assert.equal(ws.readyState, WebSocket.OPEN);
    ws.send(randomBytes(50)); // still read and dropped
    const [code] = (await once(ws, 'close')) as [number];
    const waited = Date.now() - t0;
    assert.equal(received, 0);
    assert.ok(waited >= IDLE_MS * 0.9, `closed after ${waited} ms`);
    assert.ok([1000, 1006].includes(code), String(code));
  });
}

test('a WebSocket that sends too little and closes gets a clean close back and no bytes', async () => {
  const ws = open(`${srv.secretPath}/tcp`);
  let received = 0;
  ws.on('message', (d: Buffer) => (received += d.length));
  await once(ws, 'open');
  ws.send(Buffer.from([0x00]));
  ws.close(1000);
  const [code] = (await once(ws, 'close')) as [number];
  assert.equal(code, 1000);
  assert.equal(received, 0);
});

test('UDP over WebSocket (Outline): one SIP004 packet per message both ways; garbage gets nothing', async () => {
  const udpEcho = await startUdpEcho();
  try {
    const m = getAeadMethod(METHOD);
    const key = evpBytesToKey(PASSWORD, m.keySize);
    const ws = open(`${srv.secretPath}/udp`);
    const replies: Buffer[] = [];
    ws.on('message', (d: Buffer) => replies.push(d));
    await once(ws, 'open');
    ws.send(randomBytes(80)); // garbage first: dropped
    const dest = toSocksAddress('127.0.0.1', udpEcho.port);
    for (const text of ['one', 'two']) ws.send(encodeUdp2017(m, key, dest, Buffer.from(text)));
    await waitFor(() => replies.length === 2);
    const got = replies.map((r) => decodeUdp2017(m, key, r));
    assert.deepEqual(got.map((g) => g.payload.toString()).sort(), ['one', 'two']);
    assert.equal(got[0]!.address.port, udpEcho.port);
    ws.terminate();
  } finally {
    await udpEcho.close();
  }
});

test('UDP over WebSocket: a replayed datagram gets nothing, on the same and on a new WebSocket; port 0 is dropped', async () => {
  const udpEcho = await startUdpEcho();
  try {
    const m = getAeadMethod(METHOD);
    const key = evpBytesToKey(PASSWORD, m.keySize);
    const dest = toSocksAddress('127.0.0.1', udpEcho.port);
    const captured = encodeUdp2017(m, key, dest, Buffer.from('once'));
    const ws = open(`${srv.secretPath}/udp`);
    const replies: Buffer[] = [];
    ws.on('message', (d: Buffer) => replies.push(d));
    await once(ws, 'open');
    ws.send(encodeUdp2017(m, key, toSocksAddress('127.0.0.1', 0), Buffer.from('port zero'))); // dropped, no crash
    ws.send(captured);
    ws.send(captured); // replay on the same WebSocket
    await waitFor(() => replies.length >= 1);
    const ws2 = open(`${srv.secretPath}/udp`);
    const replies2: Buffer[] = [];
    ws2.on('message', (d: Buffer) => replies2.push(d));
    await once(ws2, 'open');
    ws2.send(captured); // replay on a new association
    ws2.send(encodeUdp2017(m, key, dest, Buffer.from('fresh'))); // control: a fresh datagram is answered
    await waitFor(() => replies2.length >= 1);
    await sleep(300);
    assert.equal(replies.length, 1, 'the first copy only');
    assert.deepEqual(
      replies2.map((r) => decodeUdp2017(m, key, r).payload.toString()),
      ['fresh'],
    );
    ws.terminate();
    ws2.terminate();
  } finally {
    await udpEcho.close();
  }
});
