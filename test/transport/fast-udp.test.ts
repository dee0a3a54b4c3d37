// FastUdpSender on real loopback sockets: datagrams arrive intact through the native sendto path,
// an IPv4 destination works from a dual-stack udp6 socket, and a closed socket is never written
// through its old fd number (which the kernel may give to another socket).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { nativeAvailable, nativeLoadError } from '../../src/protocol/shadowsocks/native.js';
import { FastUdpSender } from '../../src/transport/fast-udp.js';
import { prerequisiteMissing } from '../helpers/prereq.js';

async function bound(type: 'udp4' | 'udp6', host: string): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type, ipv6Only: false });
  s.bind(0, host);
  await once(s, 'listening');
  return s;
}

function collect(s: dgram.Socket, n: number, timeoutMs = 5000): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`only ${got.length}/${n} datagrams arrived`)), timeoutMs);
    s.on('message', (m) => {
      got.push(m);
      if (got.length === n) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

test('FastUdpSender: 200 datagrams of 1..1400 bytes arrive intact (native path when built)', async (t) => {
  if (!nativeAvailable())
    prerequisiteMissing(
      `native addon unavailable (${nativeLoadError()})`,
      'testing the socket.send fallback only',
    );
  const rx = await bound('udp4', '127.0.0.1');
  const tx = await bound('udp4', '127.0.0.1');
  t.after(() => {
    rx.close();
    tx.close();
  });
  const sender = new FastUdpSender(tx, 4);
  const sent = Array.from({ length: 200 }, (_, i) => randomBytes(1 + ((i * 7) % 1400)));
  const arrived = collect(rx, sent.length);
  // Paced in bursts of 10, so the receiver's buffer never overflows (loopback drops, too).
  for (let i = 0; i < sent.length; i++) {
    assert.equal(sender.send(sent[i]!, rx.address().port, '127.0.0.1'), true);
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 2));
  }
  assert.equal(sender.usesNative, nativeAvailable(), 'took the native path exactly when the addon is loaded');
  const got = await arrived;
  const key = (b: Buffer): string => b.toString('hex');
  assert.deepEqual(new Set(got.map(key)), new Set(sent.map(key)));
});

test('FastUdpSender: a udp6 dual-stack socket reaches an IPv4 destination (v4-mapped)', async (t) => {
  const rx = await bound('udp4', '127.0.0.1');
  const tx = await bound('udp6', '::');
  t.after(() => {
    rx.close();
    tx.close();
  });
  const sender = new FastUdpSender(tx, 6);
  const arrived = collect(rx, 1);
  assert.equal(sender.send(Buffer.from('over v4-mapped'), rx.address().port, '127.0.0.1'), true);
  assert.equal((await arrived)[0]!.toString(), 'over v4-mapped');
});

test('FastUdpSender: after close it never writes through the stale fd; a bad address is a drop', async (t) => {
  const rx = await bound('udp4', '127.0.0.1');
  t.after(() => rx.close());
  const tx = await bound('udp4', '127.0.0.1');
  const sender = new FastUdpSender(tx, 4);
  const first = collect(rx, 1);
  assert.equal(sender.send(Buffer.from('one'), rx.address().port, '127.0.0.1'), true);
  await first;
  tx.close();
  // A new socket likely takes the old fd number; the closed sender must not send through it.
  const other = await bound('udp4', '127.0.0.1');
  t.after(() => other.close());
  let leaked = 0;
  rx.on('message', () => leaked++);
  assert.equal(sender.send(Buffer.from('two'), rx.address().port, '127.0.0.1'), false);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(leaked, 0, 'nothing arrived from the closed sender');
  const live = new FastUdpSender(other, 4);
  assert.equal(live.send(Buffer.from('x'), 9, 'not-an-ip'), false, 'a name is not sent anywhere');
});
