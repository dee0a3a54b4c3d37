/**
 * A genuine client's Shadowsocks request header may arrive over several WebSocket messages (a
 * v2ray-plugin client forwards each local read as a message), and TCP may cut the socket's
 * reads anywhere, inside a frame header too. The stream must come out whole either way: here the
 * header takes three messages, the third's read ends 0-5 bytes into the next frame's 6-byte
 * header, and the rest follows in the next read. Every byte must reach the key's stream.
 *
 * Written against a pre-authentication gate between the socket and ws (review of session 19):
 * a gate that keeps a cut frame header aside must still hand it on when the bytes before it
 * authenticate the stream in the same read.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { AeadDecoder, AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { encodeAddress, toSocksAddress } from '../../src/protocol/socks5/address.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';

const METHOD = 'aes-256-gcm';
const PASSWORD = `split-${randomBytes(6).toString('hex')}`;
/** Salt (32) and the first length block (2 + 16): the bytes key trial needs for this method. */
const TRIAL_BYTES = 50;

let srv: WsTestServer;
let echo: TestServer;
before(async () => {
  srv = await startWsTestServer({ keys: [{ id: 'k', method: METHOD, secret: PASSWORD }], idleMs: 10_000 });
  echo = await startEcho();
});
after(async () => {
  await Promise.all([srv.close(), echo.close()]);
});

/** A client frame: binary, masked with a zero key (so the payload goes as it is), length < 65536. */
function frame(payload: Buffer): Buffer {
  const n = payload.length;
  const len = n < 126 ? Buffer.from([0x80 | n]) : Buffer.from([0x80 | 126, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([0x82]), len, Buffer.alloc(4), payload]);
}

/** The payloads of the whole server frames (unmasked, each under 64 KiB) at the start of `b`. */
function payloads(b: Buffer): { data: Buffer; used: number } {
  const out: Buffer[] = [];
  let i = 0;
  while (i + 2 <= b.length) {
    let n = b[i + 1]! & 0x7f;
    let h = 2;
    if (n === 126) {
      if (i + 4 > b.length) break;
      n = b.readUInt16BE(i + 2);
      h = 4;
    }
    if (i + h + n > b.length) break;
    out.push(b.subarray(i + h, i + h + n));
    i += h + n;
  }
  return { data: Buffer.concat(out), used: i };
}

const flat = (o: Buffer | Buffer[] | undefined): Buffer =>
  o === undefined ? Buffer.alloc(0) : Array.isArray(o) ? Buffer.concat(o) : o;

test('a request header over three messages, a read cut inside the next frame header: nothing lost', async () => {
  const m = getAeadMethod(METHOD);
  const key = evpBytesToKey(PASSWORD, m.keySize);
  for (let cut = 0; cut < 6; cut++) {
    const enc = new AeadEncoder(m, key);
    const dec = new AeadDecoder(m, key);
    const request = Buffer.concat([encodeAddress(toSocksAddress('127.0.0.1', echo.port)), Buffer.from('hi')]);
    const first = flat(enc.encode(request));
    const next = frame(flat(enc.encode(Buffer.from('there'))));
    assert.ok(first.length > TRIAL_BYTES && next.length > 6);

    const s = net.connect({ port: srv.webPort, host: '127.0.0.1', noDelay: true });
    s.on('error', () => {});
    let got = Buffer.alloc(0);
    let reply = Buffer.alloc(0);
    let upgraded = false;
    s.on('data', (d: Buffer) => {
      reply = Buffer.concat([reply, d]);
      if (!upgraded) {
        const end = reply.indexOf('\r\n\r\n');
        if (end < 0) return;
        assert.match(reply.toString('latin1', 0, 13), /^HTTP\/1\.1 101/);
        upgraded = true;
        reply = reply.subarray(end + 4);
      }
    });
    try {
      s.write(
        `GET ${srv.secretPath}/tcp HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`,
      );
      await waitFor(() => upgraded, { message: 'the upgrade' });
      // Two messages short of what key trial needs (the dialect is decided, the key not yet)…
      s.write(Buffer.concat([frame(first.subarray(0, 20)), frame(first.subarray(20, 40))]));
      await sleep(150);
      // …the third completes it, in a read that ends `cut` bytes into the next frame's header…
      s.write(Buffer.concat([frame(first.subarray(40)), next.subarray(0, cut)]));
      await sleep(150);
      // …and the rest of that frame in the next read.
      s.write(next.subarray(cut));
      const echoed = await waitFor(
        () => {
          // The decoder keeps its state: each whole frame's payload is fed to it once.
          const { data, used } = payloads(reply);
          reply = reply.subarray(used);
          got = Buffer.concat([got, flat(dec.push(data) as Buffer | Buffer[] | undefined)]);
          return got.length >= 7 ? got.toString() : undefined;
        },
        { timeoutMs: 10_000, message: () => `cut ${cut}: the echo of "hithere" (got "${got.toString()}")` },
      );
      assert.equal(echoed, 'hithere', `cut ${cut}`);
    } finally {
      s.destroy();
    }
  }
});
