// The addon's batched UDP sockets on real loopback sockets, and the 20-byte address helpers.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { nativeLoadError } from '../../src/protocol/shadowsocks/native.js';
import { decodeAddress } from '../../src/protocol/socks5/address.js';
import { ipToBytes } from '../../src/protocol/socks5/address.js';
import {
  ADDR_SIZE,
  addrKey,
  addrOf,
  addrToIp,
  addrToSocks,
  BatchUdpSocket,
} from '../../src/transport/batch-udp.js';
import { requireOrSkip } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

const requireBatch = (t: TestContext): boolean =>
  requireOrSkip(
    t,
    BatchUdpSocket.available(),
    `batched UDP sockets unavailable (${nativeLoadError() ?? 'not Linux, or addon not built'})`,
  );

test('ipToBytes / addrOf / addrToIp / addrToSocks agree for IPv4, IPv6 and v4-mapped literals', () => {
  assert.deepEqual([...ipToBytes('192.0.2.7')!], [192, 0, 2, 7]);
  assert.deepEqual(
    Buffer.from(ipToBytes('2001:db8::1')!).toString('hex'),
    '20010db8000000000000000000000001',
  );
  assert.deepEqual(Buffer.from(ipToBytes('::')!).toString('hex'), '0'.repeat(32));
  assert.deepEqual(Buffer.from(ipToBytes('::1')!).toString('hex'), `${'0'.repeat(31)}1`);
  assert.deepEqual(Buffer.from(ipToBytes('fe80::1:2')!).toString('hex'), 'fe800000000000000000000000010002');
  assert.deepEqual(
    Buffer.from(ipToBytes('64:ff9b::192.0.2.33')!).toString('hex'),
    '0064ff9b0000000000000000c0000221',
  );
  assert.equal(ipToBytes('example.com'), undefined);
  assert.equal(addrOf('not an ip', 1), undefined);

  const v4 = addrOf('10.1.2.3', 5353)!;
  assert.equal(v4.length, ADDR_SIZE);
  assert.deepEqual(addrToIp(v4, 0), { ip: '10.1.2.3', port: 5353, family: 4 });
  assert.deepEqual(addrOf('::ffff:10.1.2.3', 5353), v4, 'v4-mapped is reported as IPv4');
  const v6 = addrOf('2001:db8::53', 53)!;
  assert.deepEqual(addrToIp(v6, 0), { ip: '2001:db8:0:0:0:0:0:53', port: 53, family: 6 });
  // SOCKS bytes decode to the same address.
  assert.deepEqual(decodeAddress(addrToSocks(v4, 0), 0)!.address, {
    type: 'ipv4',
    host: '10.1.2.3',
    port: 5353,
  });
  const s6 = decodeAddress(addrToSocks(v6, 0), 0)!.address;
  assert.equal(s6.type, 'ipv6');
  assert.equal(s6.port, 53);
  assert.deepEqual(Buffer.from(ipToBytes(s6.host)!), Buffer.from(ipToBytes('2001:db8::53')!));
  // Keys differ by port and by address.
  const at = (b: Buffer) => addrKey(b, 0);
  assert.notEqual(at(addrOf('10.1.2.3', 1)!), at(addrOf('10.1.2.3', 2)!));
  assert.notEqual(at(addrOf('10.1.2.3', 1)!), at(addrOf('10.1.2.4', 1)!));
  assert.equal(at(addrOf('10.1.2.3', 1)!), at(addrOf('10.1.2.3', 1)!));
});

test('BatchUdpSocket: 300 datagrams in, each with its source; replies by address bytes reach the sender', async (t) => {
  if (!requireBatch(t)) return;
  const got: Array<{ data: Buffer; from: ReturnType<typeof addrToIp>; raw: Buffer }> = [];
  let arrived: () => void = () => undefined;
  const done = new Promise<void>((r) => (arrived = r));
  const sock = BatchUdpSocket.bind(4, '127.0.0.1', 0, (msg, addrs, off) => {
    got.push({
      data: Buffer.from(msg),
      from: addrToIp(addrs, off),
      raw: Buffer.from(addrs.subarray(off, off + ADDR_SIZE)),
    });
    if (got.length === 300) arrived();
  });
  t.after(() => sock.close());
  assert.ok(sock.port > 0);
  const peer = dgram.createSocket('udp4');
  peer.bind(0, '127.0.0.1');
  await once(peer, 'listening');
  t.after(() => peer.close());
  const sent = Array.from({ length: 300 }, (_, i) => randomBytes(1 + ((i * 13) % 1400)));
  for (let i = 0; i < sent.length; i++) {
    peer.send(sent[i]!, sock.port, '127.0.0.1');
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 2));
  }
  await done;
  const hex = (b: Buffer) => b.toString('hex');
  assert.deepEqual(new Set(got.map((g) => hex(g.data))), new Set(sent.map(hex)), 'every datagram, intact');
  for (const g of got) assert.deepEqual(g.from, { ip: '127.0.0.1', port: peer.address().port, family: 4 });

  const reply = once(peer, 'message');
  assert.equal(sock.send(Buffer.from('back'), got[0]!.raw, 0), true);
  assert.equal(String((await reply)[0]), 'back');
  const reply2 = once(peer, 'message');
  assert.equal(sock.sendTo(Buffer.from('by ip'), peer.address().port, '127.0.0.1'), true);
  assert.equal(String((await reply2)[0]), 'by ip');
  assert.equal(sock.sendTo(Buffer.from('x'), 0, '127.0.0.1'), false, 'port 0 is refused');
});

test('BatchUdpSocket: dual-stack socket sees IPv4 peers as IPv4; a throwing handler loses only its datagram; bind errors carry a code; close is final', async (t) => {
  if (!requireBatch(t)) return;
  const seen: string[] = [];
  const sock = BatchUdpSocket.bind(6, '::', 0, (msg) => {
    const text = String(msg);
    if (text === 'boom') throw new Error('handler failure');
    seen.push(text);
  });
  const peer = dgram.createSocket('udp4');
  peer.bind(0, '127.0.0.1');
  await once(peer, 'listening');
  t.after(() => peer.close());
  for (const m of ['a', 'boom', 'b']) peer.send(m, sock.port, '127.0.0.1');
  await waitFor(() => seen.length >= 2, { timeoutMs: 1000, intervalMs: 10, message: 'two datagrams' });
  assert.deepEqual(seen, ['a', 'b']);

  assert.throws(
    () => BatchUdpSocket.bind(6, '::', sock.port, () => undefined),
    (e: NodeJS.ErrnoException) => e.code === 'EADDRINUSE',
  );
  sock.close();
  sock.close(); // idempotent
  assert.equal(sock.sendTo(Buffer.from('x'), peer.address().port, '127.0.0.1'), false, 'closed: dropped');
  // The port is free again once the close has run (libuv closes handles at the end of a loop turn).
  await new Promise((r) => setTimeout(r, 20));
  const again = BatchUdpSocket.bind(6, '::', sock.port, () => undefined);
  again.close();
});

test('BatchUdpSocket: closing a socket inside its own callback, and a worker exiting with sockets open, are both clean', async (t) => {
  if (!requireBatch(t)) return;
  let calls = 0;
  const sock: BatchUdpSocket = BatchUdpSocket.bind(4, '127.0.0.1', 0, () => {
    calls++;
    sock.close(); // from inside the batch: the rest of the batch and later datagrams are not delivered
  });
  const peer = dgram.createSocket('udp4');
  peer.bind(0, '127.0.0.1');
  await once(peer, 'listening');
  t.after(() => peer.close());
  for (let i = 0; i < 5; i++) peer.send('x', sock.port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(calls, 1);

  // A worker thread that leaves sockets open: the env cleanup hook closes them, so the worker
  // exits normally instead of aborting the process over active libuv handles.
  const { Worker } = await import('node:worker_threads');
  const code = `
    const { createRequire } = require('node:module');
    const a = createRequire(${JSON.stringify(import.meta.url)})('../../build/Release/ladder_aead.node');
    const s1 = a.sockCreate(4, '127.0.0.1', 0, () => {});
    const s2 = a.sockCreate(6, '::', 0, () => {});
    require('node:worker_threads').parentPort.postMessage([a.sockPort(s1), a.sockPort(s2)]);
  `;
  const w = new Worker(code, { eval: true });
  const [ports] = (await once(w, 'message')) as [number[]];
  assert.ok(ports.every((p) => p > 0));
  await w.terminate();
  // Still alive, and the ports were released.
  await new Promise((r) => setTimeout(r, 50));
  const again = BatchUdpSocket.bind(4, '127.0.0.1', ports[0]!, () => undefined);
  again.close();
});

test('listener C forward path: forwards an authenticated datagram once; replays, port 0, private destinations dropped in C; other keys and domains left to JS untouched', async (t) => {
  if (!requireBatch(t)) return;
  const { encodeUdp2017 } = await import('../../src/protocol/shadowsocks/udp.js');
  const { getAeadMethod } = await import('../../src/protocol/shadowsocks/methods.js');
  const { evpBytesToKey } = await import('../../src/protocol/shadowsocks/kdf.js');
  const m = getAeadMethod('aes-256-gcm');
  const key = evpBytesToKey('route key', m.keySize);
  const echoed: string[] = [];
  const echo = dgram.createSocket('udp4');
  echo.on('message', (msg) => echoed.push(String(msg)));
  echo.bind(0, '127.0.0.1');
  await once(echo, 'listening');
  t.after(() => echo.close());
  const toJs: number[] = [];
  const listener = BatchUdpSocket.bind(4, '127.0.0.1', 0, (msg) => toJs.push(msg.length));
  const out = BatchUdpSocket.bind(4, '0.0.0.0', 0, () => undefined);
  t.after(() => {
    listener.close();
    out.close();
  });
  const client = dgram.createSocket('udp4');
  client.bind(0, '127.0.0.1');
  await once(client, 'listening');
  t.after(() => client.close());
  const clientAddr = addrOf('127.0.0.1', client.address().port)!;
  const send = async (p: Buffer): Promise<void> => {
    client.send(p, listener.port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 60));
  };
  const toEcho = (text: string, port = echo.address().port, k = key) =>
    encodeUdp2017(m, k, { type: 'ipv4', host: '127.0.0.1', port }, Buffer.from(text));

  listener.policy(true, 1000);
  listener.route(clientAddr, 0, out, undefined, m.cipher, key);
  const first = toEcho('one');
  await send(first);
  assert.deepEqual(echoed, ['one'], 'forwarded in C');
  assert.deepEqual(toJs, [], 'without JS');
  await send(first);
  assert.deepEqual(echoed, ['one'], 'a replay is not forwarded');
  assert.equal(listener.droppedInC(), 1);
  await send(toEcho('zero', 0));
  assert.equal(listener.droppedInC(), 2, 'port 0 dropped');
  const other = toEcho('other key', echo.address().port, evpBytesToKey('another', m.keySize));
  await send(other);
  const domain = encodeUdp2017(m, key, { type: 'domain', host: 'localhost', port: 9 }, Buffer.from('d'));
  await send(domain);
  assert.deepEqual(toJs, [other.length, domain.length], 'another key and a domain reach JS');
  assert.equal(
    listener.saltAdd(domain.subarray(0, m.saltSize)),
    true,
    'a datagram left to JS left its salt unrecorded',
  );
  // Counted like the JS path: authenticated and not a replay (forwarded or refused by policy).
  assert.equal(listener.routeTake(clientAddr, 0), first.length + toEcho('zero', 0).length);

  listener.policy(false, 1000); // the private-destination rule on: loopback is refused
  await send(toEcho('private'));
  assert.deepEqual(echoed, ['one']);
  assert.equal(listener.droppedInC(), 3, 'the private destination dropped');
  assert.equal(listener.unroute(clientAddr, 0), toEcho('private').length);
  await send(toEcho('after unroute'));
  assert.equal(toJs.length, 3, 'no route: everything goes to JS');
});
