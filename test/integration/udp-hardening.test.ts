import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { encodeUdp2017, decodeUdp2017 } from '../../src/protocol/shadowsocks/udp.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { startTestServer } from '../helpers/data-plane.js';
import { waitFor } from '../helpers/wait.js';

const method = getAeadMethod('aes-256-gcm');
const PASSWORD = 'udp-hardening';
const key = evpBytesToKey(PASSWORD, method.keySize);

/** Send one datagram from a fresh socket; resolve with the replies that arrive within `ms`. */
async function exchange(port: number, packet: Buffer, ms = 400, from?: dgram.Socket): Promise<Buffer[]> {
  const sock = from ?? dgram.createSocket('udp4');
  if (!from) await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const got: Buffer[] = [];
  const onMsg = (m: Buffer): void => void got.push(m);
  sock.on('message', onMsg);
  sock.send(packet, port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, ms));
  sock.off('message', onMsg);
  if (!from) sock.close();
  return got;
}

test('UDP: a datagram to port 0 is dropped and the server keeps serving (it used to crash the process)', async (t) => {
  const { port, echo } = await startTestServer(
    { keys: [{ id: 'k', method: method.name, secret: PASSWORD }], udp: true },
    t,
  );
  for (const host of ['127.0.0.1', 'localhost']) {
    const bad = encodeUdp2017(
      method,
      key,
      { type: host === 'localhost' ? 'domain' : 'ipv4', host, port: 0 },
      Buffer.from('x'),
    );
    assert.deepEqual(await exchange(port, bad), []);
  }
  const good = encodeUdp2017(
    method,
    key,
    { type: 'ipv4', host: '127.0.0.1', port: echo.port },
    Buffer.from('still here'),
  );
  const replies = await exchange(port, good, 1000);
  assert.equal(replies.length, 1);
  assert.equal(decodeUdp2017(method, key, replies[0]!).payload.toString(), 'still here');
});

test('UDP (SIP004): an identical replay of a datagram gets no reply, like garbage; a fresh one does', async (t) => {
  const { port, echo } = await startTestServer(
    { keys: [{ id: 'k', method: method.name, secret: PASSWORD }], udp: true },
    t,
  );
  const dest = { type: 'ipv4' as const, host: '127.0.0.1', port: echo.port };
  const packet = encodeUdp2017(method, key, dest, Buffer.from('once'));
  assert.equal((await exchange(port, packet, 1000)).length, 1, 'the original gets its reply');
  // The censor replays the captured datagram from its own address: nothing comes back.
  assert.deepEqual(await exchange(port, packet, 600), []);
  // Garbage of the same length: nothing either (the reactions match).
  assert.deepEqual(await exchange(port, Buffer.alloc(packet.length, 0x5a), 600), []);
  // Control: a new datagram with the same content but a fresh salt is answered.
  assert.equal((await exchange(port, encodeUdp2017(method, key, dest, Buffer.from('once')), 1000)).length, 1);
});

test('UDP usage is counted both ways for SIP004 (replies sealed in C on batched sockets) and 2022 keys', async (t) => {
  const { randomBytes } = await import('node:crypto');
  const { UdpTunnel } = await import('../../src/transport/udp-tunnel.js');
  const psk = randomBytes(32).toString('base64');
  const usage = new Map<string, { up: number; down: number }>();
  const { plane, echo } = await startTestServer(
    {
      keys: [
        { id: 'old', method: method.name, secret: PASSWORD },
        { id: 'new', method: '2022-blake3-aes-256-gcm', secret: psk },
      ],
      udp: true,
      usageFlushMs: 50,
      usage: {
        addBytes: (id, up, down) => {
          const u = usage.get(id) ?? { up: 0, down: 0 };
          u.up += up;
          u.down += down;
          usage.set(id, u);
        },
      },
    },
    t,
  );
  for (const [id, m, secret] of [
    ['old', method.name, PASSWORD],
    ['new', '2022-blake3-aes-256-gcm', psk],
  ] as const) {
    const tunnel = await UdpTunnel.open({
      host: '127.0.0.1',
      port: plane.address.port,
      method: m,
      password: secret,
    });
    let replies = 0;
    tunnel.onMessage = () => void replies++;
    for (let i = 0; i < 20; i++) {
      tunnel.send({ type: 'ipv4', host: '127.0.0.1', port: echo.port }, Buffer.alloc(500, i));
      await new Promise((r) => setTimeout(r, 5));
    }
    await waitFor(() => replies >= 20, { timeoutMs: 2000, message: () => `${id}: 20 replies (${replies})` });
    assert.equal(replies, 20, `${id}: every datagram echoed`);
    // The relay collects what its C paths relayed once a second, then the usage flush runs.
    const enough = (): boolean =>
      (usage.get(id)?.down ?? 0) >= 20 * 500 && (usage.get(id)?.up ?? 0) >= 20 * 500;
    await waitFor(enough, { timeoutMs: 3000, message: () => `${id}: usage of 20 x 500 bytes each way` });
    tunnel.close();
    const u = usage.get(id);
    assert.ok(u && u.up >= 20 * 500, `${id}: up ${u?.up}`);
    assert.ok(u.down >= 20 * 500 && u.down < 22 * 700, `${id}: down ${u.down} (20 sealed 500-byte replies)`);
    assert.ok(u.up < 22 * 700, `${id}: up ${u.up} counted once (20 datagrams of about 550 bytes)`);
  }
});
