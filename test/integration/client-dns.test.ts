/**
 * `dns` wired into the client (D11). Forwarder mode: queries to the client's local DNS server
 * (UDP and TCP) leave only through the tunnel, as DNS over TCP from the server's side, to an
 * upstream that has no UDP listener at all; whatever the route mode. Stub mode: plain DNS whose
 * forged (type-mismatched) answer is dropped for the late genuine one, and auto routing learns
 * to tunnel the name.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { startDataPlane, type DataPlane } from '../../src/server/index.js';

const PASSWORD = `dns-${randomBytes(6).toString('hex')}`;
const METHOD = 'chacha20-ietf-poly1305';
const TRUE_IP = '192.0.2.7';

/** dns-packet's decoded form; its typings omit `rcode`. */
type Packet = ReturnType<typeof dnsPacket.decode> & { rcode?: string };

function answerFor(q: Packet): Buffer {
  const question = q.questions![0]!;
  return dnsPacket.encode({
    type: 'response',
    id: q.id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: q.questions,
    answers:
      question.type === 'TXT'
        ? [{ type: 'TXT', name: question.name, ttl: 60, data: 'genuine' }]
        : [{ type: 'A', name: question.name, ttl: 60, data: TRUE_IP }],
  });
}

/** A DNS-over-TCP-only resolver on loopback (there is no UDP socket behind it). */
async function startTcpResolver() {
  const names: string[] = [];
  let connections = 0;
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    connections++;
    socks.add(s);
    s.on('error', () => {});
    s.once('close', () => socks.delete(s));
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        const q = dnsPacket.decode(msg);
        names.push(q.questions![0]!.name);
        const a = answerFor(q);
        const len = Buffer.alloc(2);
        len.writeUInt16BE(a.length);
        s.write(Buffer.concat([len, a]));
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    names,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        srv.close(() => r());
      }),
  };
}

/** A TCP forwarder in front of the server that counts tunnel connections. */
async function startTap(target: number) {
  let connections = 0;
  const socks = new Set<net.Socket>();
  const srv = net.createServer((c) => {
    connections++;
    const up = net.connect(target, '127.0.0.1');
    for (const s of [c, up]) {
      socks.add(s);
      s.on('error', () => {
        c.destroy();
        up.destroy();
      });
      s.once('close', () => socks.delete(s));
    }
    c.pipe(up).pipe(c);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        srv.close(() => r());
      }),
  };
}

function query(name: string, type: 'A' | 'TXT' = 'A'): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: Math.floor(Math.random() * 65536),
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
  });
}

async function udpAsk(port: number, q: Buffer, ms = 8000): Promise<Packet> {
  const sock = dgram.createSocket('udp4');
  try {
    return await new Promise<Packet>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no DNS answer over UDP')), ms);
      sock.once('message', (m) => {
        clearTimeout(t);
        resolve(dnsPacket.decode(m));
      });
      sock.send(q, port, '127.0.0.1');
    });
  } finally {
    sock.close();
  }
}

async function tcpAsk(port: number, q: Buffer, ms = 8000): Promise<Packet> {
  const s = net.connect(port, '127.0.0.1');
  try {
    return await new Promise<Packet>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no DNS answer over TCP')), ms);
      let buf = Buffer.alloc(0);
      s.on('error', reject);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          clearTimeout(t);
          resolve(dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))));
        }
      });
      const len = Buffer.alloc(2);
      len.writeUInt16BE(q.length);
      s.write(Buffer.concat([len, q]));
    });
  } finally {
    s.destroy();
  }
}

const firstA = (p: Packet): string | undefined =>
  ((p.answers ?? []).find((a) => a.type === 'A') as { data?: string } | undefined)?.data;

describe('ladder client --dns (forwarder through the tunnel)', () => {
  let plane: DataPlane;
  let resolver: Awaited<ReturnType<typeof startTcpResolver>>;
  let tap: Awaited<ReturnType<typeof startTap>>;

  before(async () => {
    plane = await startDataPlane({
      keys: [{ id: 'k', method: METHOD, secret: PASSWORD }],
      port: 0,
      host: '127.0.0.1',
      allowPrivateDestinations: true,
    });
    resolver = await startTcpResolver();
    tap = await startTap(plane.address.port);
  });
  after(async () => {
    await tap.close();
    await resolver.close();
    await plane.close();
  });

  for (const route of ['proxy', 'direct'] as const) {
    test(`route ${route}: UDP and TCP queries are answered through the tunnel`, async () => {
      const client: LocalClient = await startClient({
        key: formatSsUrl({ method: METHOD, password: PASSWORD, host: '127.0.0.1', port: tap.port }),
        socks: '127.0.0.1:0',
        route,
        dns: { listen: '127.0.0.1:0', upstream: { host: '127.0.0.1', port: resolver.port } },
      });
      try {
        const tunnelsBefore = tap.connections;
        const namesBefore = resolver.names.length;
        assert.equal(client.dnsMode, 'tunnel');
        const a = await udpAsk(client.dnsAddress!.udpPort, query(`www.${route}-blocked.example`));
        assert.equal(a.rcode, 'NOERROR');
        assert.equal(firstA(a), TRUE_IP);
        const b = await tcpAsk(client.dnsAddress!.tcpPort, query(`tcp.${route}-blocked.example`));
        assert.equal(firstA(b), TRUE_IP);
        assert.deepEqual(resolver.names.slice(namesBefore), [
          `www.${route}-blocked.example`,
          `tcp.${route}-blocked.example`,
        ]);
        assert.ok(tap.connections > tunnelsBefore, 'the queries went through the tunnel');
      } finally {
        await client.close();
      }
    });
  }

  test('an unreachable tunnel gives SERVFAIL, not a plaintext fallback', async () => {
    const client = await startClient({
      key: formatSsUrl({ method: METHOD, password: PASSWORD, host: '127.0.0.1', port: 9 }),
      socks: '127.0.0.1:0',
      dns: { listen: '127.0.0.1:0', upstream: { host: '127.0.0.1', port: resolver.port } },
    });
    try {
      const before = resolver.names.length;
      const a = await udpAsk(client.dnsAddress!.udpPort, query('down.example'));
      assert.equal(a.rcode, 'SERVFAIL');
      assert.equal(resolver.names.length, before);
    } finally {
      await client.close();
    }
  });
});

describe('ladder client --dns-mode stub', () => {
  test('drops the injected answer, returns the late genuine one, and auto routing learns to tunnel the name', async () => {
    // Upstream on UDP: an injector's type-mismatched A first, the genuine TXT 30 ms later.
    const up = dgram.createSocket('udp4');
    up.on('message', (m, rinfo) => {
      const q = dnsPacket.decode(m);
      const question = q.questions![0]!;
      const forged = dnsPacket.encode({
        type: 'response',
        id: q.id,
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
        questions: q.questions,
        answers: [{ type: 'A', name: question.name, ttl: 60, data: '198.51.100.66' }],
      });
      up.send(forged, rinfo.port, rinfo.address);
      setTimeout(() => up.send(answerFor(q), rinfo.port, rinfo.address), 30);
    });
    await new Promise<void>((r) => up.bind(0, '127.0.0.1', r));
    const client = await startClient({
      dialer: { dial: () => Promise.reject(new Error('no tunnel in this test')) },
      socks: '127.0.0.1:0',
      route: 'auto',
      dns: { listen: '127.0.0.1:0', mode: 'stub', upstream: { host: '127.0.0.1', port: up.address().port } },
    });
    try {
      assert.equal(client.router!.decide('poisoned.example').route, 'direct');
      const r = await udpAsk(client.dnsAddress!.udpPort, query('poisoned.example', 'TXT'));
      assert.equal(r.rcode, 'NOERROR');
      assert.deepEqual(
        (r.answers ?? []).map((a) => a.type),
        ['TXT'],
        'the forged A answer is dropped',
      );
      assert.deepEqual(client.router!.decide('poisoned.example'), {
        route: 'proxy',
        source: 'learned',
        reason: 'forged-dns',
      });
    } finally {
      await client.close();
      up.close();
    }
  });
});
