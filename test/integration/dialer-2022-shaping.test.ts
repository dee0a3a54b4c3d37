/**
 * The 2022 dialer's shaping hooks as `createTunnelDialer` wires them: the first write a shaped
 * 2022-blake3-aes-256-gcm connection puts on the wire (read from the other end of a stream pair
 * given as the next hop) is C6-exempt through its salt prefix, stays off the prober's length
 * trigger, and decodes with the server's codec; the control (`shape: false`) starts with a random
 * salt; 2022-blake3-aes-128-gcm is not shaped and refuses `shape: true`; bad hook use is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { duplexPair, type Duplex } from 'node:stream';
import { createTunnelDialer, shapesByDefault } from '../../src/client/index.js';
import { Aead2022RequestDecoder } from '../../src/protocol/shadowsocks/aead2022.js';
import { getAead2022Method } from '../../src/protocol/shadowsocks/methods2022.js';
import { fetFeatures } from '../../src/protocol/shadowsocks/shaping-features.js';
import { inProberTrigger } from '../../src/protocol/shadowsocks/shaping.js';
import { Shadowsocks2022Dialer } from '../../src/transport/shadowsocks2022-dialer.js';

const M256 = '2022-blake3-aes-256-gcm';
const dest = { type: 'domain' as const, host: 'example.com', port: 443 };

/** Dial once through a stream pair and return the first write the server side receives. */
async function firstWrite(shape: boolean | undefined, data: Buffer): Promise<{ wire: Buffer; key: Buffer }> {
  const key = randomBytes(32);
  let far: Duplex | undefined;
  const dialer = createTunnelDialer(
    {
      host: '127.0.0.1',
      port: 1,
      method: M256,
      password: key.toString('base64'),
      nextHop: () => {
        const [near, other] = duplexPair();
        far = other;
        return Promise.resolve(near);
      },
    },
    { shape },
  );
  const conn = await dialer.dial(dest, data);
  const wire = await new Promise<Buffer>((resolve) => far!.once('data', (c: Buffer) => resolve(c)));
  conn.socket.destroy();
  return { wire, key };
}

test('shaped 2022 first writes: exempt by the salt prefix, off the prober trigger, decoded by the server codec', async () => {
  const method = getAead2022Method(M256);
  let moved = 0;
  for (let len = 1; len <= 300; len += 7) {
    const data = randomBytes(len);
    const { wire, key } = await firstWrite(undefined, data);
    const f = fetFeatures(wire);
    assert.ok(f.ex2 || f.ex5, `len ${len}: ${wire.subarray(0, 16).toString('hex')}`);
    assert.ok(!inProberTrigger(wire.length), `len ${len}: ${wire.length}`);
    const dec = new Aead2022RequestDecoder(method, { key });
    assert.deepEqual(Buffer.concat(dec.push(wire, Date.now())), data);
    if (dec.header!.paddingLength > 0) moved++;
  }
  assert.ok(moved > 0, 'some lengths needed a byte of padding');
});

test('control: shape false gives an unprefixed salt (C6-eligible but for chance)', async () => {
  let eligible = 0;
  for (let i = 0; i < 40; i++)
    if (!fetFeatures((await firstWrite(false, randomBytes(100))).wire).exempt) eligible++;
  assert.ok(eligible >= 36, `${eligible}/40 eligible`);
});

test('2022-blake3-aes-128-gcm is not shaped (no room after 16 random bytes); bad hook use is refused', async () => {
  const k16 = randomBytes(16).toString('base64');
  const ep = { host: '127.0.0.1', port: 1, method: '2022-blake3-aes-128-gcm', password: k16 };
  assert.equal(shapesByDefault(ep), false);
  assert.equal(shapesByDefault({ ...ep, method: M256, password: randomBytes(32).toString('base64') }), true);
  assert.throws(() => createTunnelDialer(ep, { shape: true }), /needs a 32-byte salt/);
  assert.ok(createTunnelDialer(ep));
  const k32 = randomBytes(32).toString('base64');
  assert.throws(
    () =>
      new Shadowsocks2022Dialer({
        ...ep,
        method: M256,
        password: k32,
        prefix: Buffer.from('GET /'),
        saltFactory: () => new Uint8Array(32),
      }),
    /either a fixed prefix or a salt factory/,
  );
  const bad = new Shadowsocks2022Dialer({
    ...ep,
    method: M256,
    password: k32,
    saltFactory: () => new Uint8Array(31),
  });
  await assert.rejects(() => bad.dial(dest, Buffer.from('x')), /salt factory returned 31 bytes, expected 32/);
});

test('createTunnelDialer refuses a bad 2022 key at once although the dialer loads at its first dial', () => {
  const ep = { host: '127.0.0.1', port: 1, method: M256, password: randomBytes(16).toString('base64') };
  assert.throws(() => createTunnelDialer(ep), /32/); // a 16-byte PSK for a 32-byte key
  const k32 = randomBytes(32).toString('base64');
  assert.throws(
    () => createTunnelDialer({ ...ep, password: k32, prefix: new Uint8Array(33) }, { shape: false }),
    /longer than the 32-byte salt/,
  );
});
