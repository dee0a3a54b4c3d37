import { describe, it } from 'node:test';
import { requireOrSkip } from '../helpers/prereq.js';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { systemClock } from '../../src/shared/clock.js';
import { DialError, dialDestination, isPrivateAddress, PRIVATE_V4 } from '../../src/server/destination.js';

describe('isPrivateAddress', () => {
  it('refuses loopback, private, link-local, unspecified, multicast, mapped forms', () => {
    for (const ip of [
      '127.0.0.1',
      '127.8.9.10',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '0.0.0.0',
      '100.64.0.1',
      '224.0.0.1',
      '255.255.255.255',
      '::1',
      '::',
      'fe80::1',
      'fd00::1',
      'fc00::1',
      'ff02::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:10.0.0.1',
      '::7f00:1', // IPv4-compatible 127.0.0.1
      '::10.0.0.1',
      '64:ff9b::127.0.0.1', // NAT64 well-known prefix
      '64:ff9b::a9fe:a9fe', // NAT64 of 169.254.169.254 (cloud metadata)
      'fe80::1%eth0',
      'not-an-ip',
    ]) {
      assert.equal(isPrivateAddress(ip), true, ip);
    }
  });
  it('allows public addresses', () => {
    for (const ip of [
      '1.1.1.1',
      '8.8.8.8',
      '172.32.0.1',
      '192.169.0.1',
      '2001:4860:4860::8888',
      '::ffff:8.8.8.8',
      '64:ff9b::8.8.8.8',
      '::8.8.8.8',
      '64:ff9b:1::a00:1', // local-use NAT64 (RFC 8215) is not the well-known prefix
    ]) {
      assert.equal(isPrivateAddress(ip), false, ip);
    }
  });
  it('decides IPv4 literals as net.BlockList does: every range edge and 20,000 random addresses', () => {
    const reference = new net.BlockList();
    for (const [n, bits] of PRIVATE_V4) reference.addSubnet(n, bits, 'ipv4');
    // Every range's first and last address and their neighbours, wherever the table puts them.
    const num = (ip: string): number => ip.split('.').reduce((v, o) => v * 256 + Number(o), 0);
    const edges = PRIVATE_V4.flatMap(([n, bits]) => {
      const first = num(n);
      const last = first + 2 ** (32 - bits) - 1;
      return [first, last];
    });
    const dotted = (a: number): string => [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.');
    const probes: number[] = [0xffffffff];
    for (const e of edges) probes.push(e, (e - 1) >>> 0, Math.min(e + 1, 0xffffffff));
    let seed = 12345;
    for (let i = 0; i < 20_000; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      probes.push(seed);
    }
    for (const a of probes) {
      const ip = dotted(a);
      assert.equal(isPrivateAddress(ip), reference.check(ip, 'ipv4'), ip);
    }
    // Not dotted-quad literals: refused (not an IP) exactly as before.
    for (const ip of [
      '1.2.3',
      '1.2.3.4.5',
      '01.2.3.4',
      '1.2.3.256',
      '1..2.3',
      '.1.2.3',
      '1.2.3.',
      '1.2.3.4 ',
    ]) {
      assert.equal(isPrivateAddress(ip), true, ip);
    }
  });
});

describe('dialDestination', () => {
  it('refuses a name that resolves only to private addresses, before connecting', async () => {
    await assert.rejects(
      dialDestination(
        { type: 'domain', host: 'intranet.example', port: 80 },
        {
          allowPrivate: false,
          timeoutMs: 1000,
          clock: systemClock,
          lookup: async () => [{ address: '10.0.0.5', family: 4 }],
        },
      ),
      (e: unknown) => e instanceof DialError && e.status === 'ERR_FORBIDDEN',
    );
    await assert.rejects(
      dialDestination(
        { type: 'ipv4', host: '127.0.0.1', port: 80 },
        { allowPrivate: false, timeoutMs: 1000, clock: systemClock },
      ),
      (e: unknown) => e instanceof DialError && e.status === 'ERR_FORBIDDEN',
    );
  });

  it('reports resolution failure and refused connections by status, without the destination', async () => {
    await assert.rejects(
      dialDestination(
        { type: 'domain', host: 'nx.example', port: 80 },
        {
          allowPrivate: true,
          timeoutMs: 1000,
          clock: systemClock,
          lookup: async () => {
            throw new Error('ENOTFOUND');
          },
        },
      ),
      (e: unknown) =>
        e instanceof DialError && e.status === 'ERR_RESOLVE' && !e.message.includes('nx.example'),
    );
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    await assert.rejects(
      dialDestination(
        { type: 'ipv4', host: '127.0.0.1', port },
        { allowPrivate: true, timeoutMs: 1000, clock: systemClock },
      ),
      (e: unknown) => e instanceof DialError && e.status === 'ERR_CONNECT',
    );
  });

  it('falls through to the next resolved address', async () => {
    const s = net.createServer((c) => c.end());
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const port = (s.address() as AddressInfo).port;
    try {
      const sock = await dialDestination(
        { type: 'domain', host: 'two.example', port },
        {
          allowPrivate: true,
          timeoutMs: 2000,
          clock: systemClock,
          lookup: async () => [
            { address: '127.0.0.2', family: 4 },
            { address: '127.0.0.1', family: 4 },
          ],
        },
      );
      sock.destroy();
    } finally {
      await new Promise<void>((r) => s.close(() => r()));
    }
  });
});

describe('the C fast path applies the same private rule (native/udp_fastpath.cc)', () => {
  it('agrees with isPrivateAddress on every range edge, embedded forms and random addresses', async (t) => {
    const { createRequire } = await import('node:module');
    const { nativeSockets } = await import('../../src/transport/native-sockets.js');
    if (!requireOrSkip(t, nativeSockets() !== undefined, 'the native addon with sockets (Linux)')) return;
    const addon = createRequire(import.meta.url)('../../build/Release/ladder_aead.node') as {
      isPrivateIp(b: Uint8Array): boolean;
    };
    const v4 = (b: number[]): string => b.join('.');
    const v6 = (b: Uint8Array): string => {
      const g: string[] = [];
      for (let i = 0; i < 16; i += 2) g.push(((b[i]! << 8) | b[i + 1]!).toString(16));
      return g.join(':');
    };
    const check4 = (b: number[]): void =>
      assert.equal(addon.isPrivateIp(Uint8Array.from(b)), isPrivateAddress(v4(b)), v4(b));
    const check6 = (b: Uint8Array): void =>
      assert.equal(addon.isPrivateIp(b), isPrivateAddress(v6(b)), v6(b));
    // Edges of every IPv4 range, one below and one above.
    for (const first of [
      0, 1, 9, 10, 11, 99, 100, 101, 126, 127, 128, 168, 169, 170, 171, 172, 173, 191, 192, 193, 223, 224,
      239, 240, 255,
    ])
      for (const second of [0, 1, 15, 16, 31, 32, 63, 64, 127, 128, 167, 168, 169, 253, 254, 255])
        check4([first, second, 7, 9]);
    const rnd = (n: number): Uint8Array =>
      Uint8Array.from({ length: n }, () => Math.floor(Math.random() * 256));
    for (let i = 0; i < 3000; i++) check4([...rnd(4)]);
    const prefixes = [
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], // mapped
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], // compatible
      [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0], // NAT64
      [0, 0x64, 0xff, 0x9b, 0, 1, 0, 0, 0, 0, 0, 0], // local-use NAT64 (not embedded)
      [0xfe, 0x80],
      [0xfe, 0xc0],
      [0xfc],
      [0xfd],
      [0xff],
      [0x20, 0x01, 0x0d, 0xb8],
    ];
    for (let i = 0; i < 6000; i++) {
      const b = rnd(16);
      const p = prefixes[i % (prefixes.length + 1)];
      if (p) b.set(p, 0);
      if (i % 7 === 0) b.set([127, 0, 0, 1], 12);
      if (i % 11 === 0) b.set([10, 1, 2, 3], 12);
      check6(b);
    }
    check6(new Uint8Array(16));
    check6(Uint8Array.from([...new Uint8Array(15), 1]));
  });
});
