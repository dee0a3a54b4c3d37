import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import dnsPacket from 'dns-packet';
import { decodeDns, frameTcp, TcpFrameDecoder } from '../../src/protocol/dns/message.js';
import type { SocksAddress } from '../../src/protocol/socks5/address.js';
import { FilteringUdpResolver, TunnelDnsResolver, type DnsDial } from '../../src/client/dns/resolvers.js';
import { startDnsServer } from '../../src/client/dns/server.js';

const NAME = 'blocked.example';
const TRUE_IP = '198.51.100.7';
const FORGED_IP = '31.13.72.36';

function query(name: string, type: 'A' | 'AAAA' | 'TXT', id = 0x4242): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
  });
}

function answerFor(q: Buffer, genuine: boolean, forgedIp = FORGED_IP): Buffer {
  const d = decodeDns(q);
  const question = d.questions![0]!;
  let answers: dnsPacket.Answer[];
  if (!genuine) {
    // The GFW: copy the question, answer A (AAAA only for AAAA queries) with a pool address.
    answers = [
      {
        type: question.type === 'AAAA' ? 'AAAA' : 'A',
        name: question.name,
        ttl: 200,
        data: question.type === 'AAAA' ? '2001:db8::36' : forgedIp,
      },
    ];
  } else if (question.type === 'TXT') {
    answers = [{ type: 'TXT', name: question.name, ttl: 300, data: 'v=genuine' }];
  } else {
    answers = [{ type: 'A', name: question.name, ttl: 300, data: TRUE_IP }];
  }
  return dnsPacket.encode({ type: 'response', id: d.id!, flags: 0x0180, questions: d.questions!, answers });
}

/** A UDP "resolver" on a censored path: a forged answer at once, the genuine one `delayMs` later. */
async function injectingUpstream(opts: {
  delayMs: number;
  dropGenuine?: boolean;
  inject?: boolean;
  silent?: boolean;
  forgedIp?: string;
}) {
  const sock = dgram.createSocket('udp4');
  let queries = 0;
  sock.on('message', (msg, rinfo) => {
    queries++;
    if (opts.silent) return;
    if (opts.inject !== false) sock.send(answerFor(msg, false, opts.forgedIp), rinfo.port, rinfo.address);
    if (!opts.dropGenuine) {
      setTimeout(() => sock.send(answerFor(msg, true), rinfo.port, rinfo.address), opts.delayMs);
    }
  });
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  return { port: sock.address().port, queries: () => queries, close: () => sock.close() };
}

function answerIps(resp: Buffer): string[] {
  return (decodeDns(resp).answers ?? []).map((a) => String((a as { data: unknown }).data));
}

function rcode(resp: Buffer): string {
  return (decodeDns(resp) as unknown as { rcode: string }).rcode;
}

test('stub: forged answer first (pool address), genuine 50 ms later -> the genuine address', async () => {
  const up = await injectingUpstream({ delayMs: 50 });
  try {
    let forgedSeen = 0;
    const r = new FilteringUdpResolver({
      upstream: { host: '127.0.0.1', port: up.port },
      forged: [FORGED_IP],
      onForged: () => forgedSeen++,
    });
    const d = await r.resolveDetailed(query(NAME, 'A'));
    assert.deepEqual(answerIps(d.response), [TRUE_IP]);
    assert.equal(decodeDns(d.response).id, 0x4242);
    assert.equal(d.forgedCount, 1);
    assert.equal(forgedSeen, 1);
  } finally {
    up.close();
  }
});

test('stub: an unknown forged address is still beaten by the later genuine answer (race rule)', async () => {
  const up = await injectingUpstream({ delayMs: 50 });
  try {
    const r = new FilteringUdpResolver({ upstream: { host: '127.0.0.1', port: up.port } });
    const d = await r.resolveDetailed(query(NAME, 'A'));
    assert.deepEqual(answerIps(d.response), [TRUE_IP]);
  } finally {
    up.close();
  }
});

test('stub: TXT query answered with A is a type mismatch; the genuine TXT wins', async () => {
  const up = await injectingUpstream({ delayMs: 50 });
  try {
    const r = new FilteringUdpResolver({ upstream: { host: '127.0.0.1', port: up.port } });
    const d = await r.resolveDetailed(query(NAME, 'TXT'));
    assert.deepEqual(d.reasons, ['type-mismatch']);
    const ans = decodeDns(d.response).answers!;
    assert.equal(ans.length, 1);
    assert.equal(ans[0]!.type, 'TXT');
  } finally {
    up.close();
  }
});

test('stub: only forged replies (genuine dropped) -> SERVFAIL, never the forged address', async () => {
  const up = await injectingUpstream({ delayMs: 50, dropGenuine: true });
  try {
    const r = new FilteringUdpResolver({
      upstream: { host: '127.0.0.1', port: up.port },
      forged: ['31.13.0.0/16'],
    });
    const resp = await r.resolve(query(NAME, 'A'));
    assert.equal(rcode(resp), 'SERVFAIL');
    assert.ok(!resp.includes(Buffer.from([31, 13, 72, 36])));
    const txt = await r.resolve(query(NAME, 'TXT'));
    assert.equal(rcode(txt), 'SERVFAIL');
  } finally {
    up.close();
  }
});

test('stub: no injection -> answer after the window; silence -> SERVFAIL after the timeout', async () => {
  const up = await injectingUpstream({ delayMs: 0, inject: false });
  const silent = await injectingUpstream({ delayMs: 0, silent: true });
  try {
    const r = new FilteringUdpResolver({ upstream: { host: '127.0.0.1', port: up.port }, windowMs: 100 });
    const t0 = Date.now();
    assert.deepEqual(answerIps(await r.resolve(query('ok.example', 'A'))), [TRUE_IP]);
    assert.ok(Date.now() - t0 >= 90);
    const r2 = new FilteringUdpResolver({
      upstream: { host: '127.0.0.1', port: silent.port },
      timeoutMs: 200,
    });
    assert.equal(rcode(await r2.resolve(query('ok.example', 'A'))), 'SERVFAIL');
  } finally {
    up.close();
    silent.close();
  }
});

/** A DNS-over-TCP resolver on the far side (genuine answers only). */
async function tcpUpstream() {
  let queries = 0;
  const server = net.createServer((s) => {
    const dec = new TcpFrameDecoder();
    s.on('data', (d: Buffer) => {
      for (const m of dec.push(d)) {
        queries++;
        s.write(frameTcp(answerFor(m, true)));
      }
    });
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    queries: () => queries,
    close: () => server.close(),
  };
}

for (const reuse of [false, true]) {
  test(`forwarder (reuse=${reuse}): UDP and TCP queries to the local listener go through dial() as DNS over TCP`, async () => {
    const far = await tcpUpstream();
    const udpPath = await injectingUpstream({ delayMs: 50 }); // would poison any plaintext UDP query
    const dials: { dest: SocksAddress; first: Buffer | undefined }[] = [];
    // Stand-in for the tunnel dialer: connects to `dest` (here the far-side resolver) directly.
    const dial: DnsDial = async (dest, first) => {
      dials.push({ dest, first });
      const s = net.connect(dest.port, dest.host);
      await once(s, 'connect');
      if (first) s.write(first);
      return s;
    };
    const resolver = new TunnelDnsResolver({
      dial,
      upstream: { type: 'ipv4', host: '127.0.0.1', port: far.port },
      reuse,
    });
    const srv = await startDnsServer({ host: '127.0.0.1', port: 0, resolver });
    try {
      // UDP client
      const c = dgram.createSocket('udp4');
      c.send(query(NAME, 'A', 0x0101), srv.udpPort, '127.0.0.1');
      const [msg] = (await once(c, 'message')) as [Buffer];
      c.close();
      assert.equal(decodeDns(msg).id, 0x0101);
      assert.deepEqual(answerIps(msg), [TRUE_IP]);
      // TCP client, two pipelined queries
      const t = net.connect(srv.tcpPort, '127.0.0.1');
      await once(t, 'connect');
      t.write(Buffer.concat([frameTcp(query(NAME, 'A', 7)), frameTcp(query(NAME, 'TXT', 8))]));
      const dec = new TcpFrameDecoder();
      const got: Buffer[] = [];
      while (got.length < 2) {
        const [d] = (await once(t, 'data')) as [Buffer];
        got.push(...dec.push(d));
      }
      t.destroy();
      assert.deepEqual(new Set(got.map((g) => decodeDns(g).id)), new Set([7, 8]));
      // Every query went through dial() (first data = a framed query); none as plain UDP.
      assert.equal(dials.length, reuse ? 1 : 3);
      for (const d of dials) {
        assert.equal(d.dest.port, far.port);
        assert.ok(d.first && d.first.readUInt16BE(0) === d.first.length - 2);
      }
      assert.equal(far.queries(), 3);
      assert.equal(udpPath.queries(), 0);
    } finally {
      resolver.close();
      await srv.close();
      far.close();
      udpPath.close();
    }
  });
}

test('forwarder reuse: concurrent queries share one stream; a stream the upstream closed is replaced; a stale one is retried once', async () => {
  let conns = 0;
  let dropNext = false;
  let dropAlways = false;
  const server = net.createServer((s) => {
    conns++;
    const dec = new TcpFrameDecoder();
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      for (const m of dec.push(d)) {
        if (dropNext || dropAlways) {
          // Simulate an upstream idle-close racing our write: drop the query and close.
          dropNext = false;
          s.destroy();
          return;
        }
        s.write(frameTcp(answerFor(m, true)));
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const dial: DnsDial = async (dest, first) => {
    const s = net.connect(dest.port, dest.host);
    await once(s, 'connect');
    if (first) s.write(first);
    return s;
  };
  const r = new TunnelDnsResolver({ dial, upstream: { type: 'ipv4', host: '127.0.0.1', port } });
  try {
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => r.resolve(query(`n${i}.example`, 'A', 1000 + i))),
    );
    assert.deepEqual(
      answers.map((a) => decodeDns(a).id),
      Array.from({ length: 20 }, (_, i) => 1000 + i),
    );
    assert.equal(r.dials, 1);
    assert.equal(conns, 1);
    // The upstream drops the stream under the next query: it is resent once on a new stream.
    dropNext = true;
    assert.equal(decodeDns(await r.resolve(query('late.example', 'A', 77))).id, 77);
    assert.equal(r.dials, 2);
    // A fresh stream that dies before answering is not retried: the query fails (SERVFAIL).
    r.close();
    dropAlways = true;
    await assert.rejects(r.resolve(query('never.example', 'A', 78)), /closed/);
  } finally {
    r.close();
    server.close();
  }
});

test('forwarder: a failing dial becomes SERVFAIL', async () => {
  const dial: DnsDial = () => Promise.reject(new Error('tunnel down'));
  const resolver = new TunnelDnsResolver({ dial, upstream: { type: 'ipv4', host: '127.0.0.1', port: 53 } });
  const srv = await startDnsServer({ host: '127.0.0.1', port: 0, resolver });
  try {
    const c = dgram.createSocket('udp4');
    c.send(query(NAME, 'A', 0x0102), srv.udpPort, '127.0.0.1');
    const [msg] = (await once(c, 'message')) as [Buffer];
    c.close();
    assert.equal(rcode(msg), 'SERVFAIL');
    assert.equal(decodeDns(msg).id, 0x0102);
  } finally {
    await srv.close();
  }
});

test('stub with a canary: an unknown forged address is learned from the canary and never returned', async () => {
  const up = await injectingUpstream({ delayMs: 50, dropGenuine: true });
  const canary = await injectingUpstream({ delayMs: 0, dropGenuine: true }); // no resolver: only the injector answers
  const up2 = await injectingUpstream({ delayMs: 50 });
  try {
    const r = new FilteringUdpResolver({
      upstream: { host: '127.0.0.1', port: up.port },
      canary: { host: '127.0.0.1', port: canary.port },
    });
    const d = await r.resolveDetailed(query(NAME, 'A'));
    assert.equal(rcode(d.response), 'SERVFAIL');
    assert.ok(d.reasons.includes('canary-reply'));
    assert.equal(r.learnedForged, 1);
    // Without the canary the same path would have returned the forged address (negative control).
    const blind = new FilteringUdpResolver({ upstream: { host: '127.0.0.1', port: up.port } });
    assert.deepEqual(answerIps(await blind.resolve(query(NAME, 'A'))), [FORGED_IP]);
    // With the genuine answer arriving, the canary-trained stub returns it.
    const r2 = new FilteringUdpResolver({
      upstream: { host: '127.0.0.1', port: up2.port },
      canary: { host: '127.0.0.1', port: canary.port },
    });
    assert.deepEqual(answerIps(await r2.resolve(query(NAME, 'A'))), [TRUE_IP]);
  } finally {
    up.close();
    canary.close();
    up2.close();
  }
});

test('listener: an answer over 512 bytes is truncated (TC) over UDP and whole over TCP', async () => {
  const big = (q: Buffer): Buffer => {
    const d = decodeDns(q);
    const answers: dnsPacket.Answer[] = Array.from({ length: 40 }, (_, i) => ({
      type: 'TXT' as const,
      name: d.questions![0]!.name,
      ttl: 60,
      data: `record-${i}-${'x'.repeat(20)}`,
    }));
    return dnsPacket.encode({ type: 'response', id: d.id!, flags: 0x0180, questions: d.questions!, answers });
  };
  const srv = await startDnsServer({
    host: '127.0.0.1',
    port: 0,
    resolver: { resolve: (q) => Promise.resolve(big(q)) },
  });
  try {
    const c = dgram.createSocket('udp4');
    c.send(query(NAME, 'TXT', 0x0201), srv.udpPort, '127.0.0.1');
    const [msg] = (await once(c, 'message')) as [Buffer];
    c.close();
    const d = decodeDns(msg);
    assert.ok(msg.length <= 512);
    assert.equal(d.flag_tc, true);
    assert.equal(d.id, 0x0201);
    const t = net.connect(srv.tcpPort, '127.0.0.1');
    await once(t, 'connect');
    t.write(frameTcp(query(NAME, 'TXT', 0x0202)));
    const dec = new TcpFrameDecoder();
    const got: Buffer[] = [];
    while (got.length < 1) {
      const [chunk] = (await once(t, 'data')) as [Buffer];
      got.push(...dec.push(chunk));
    }
    t.destroy();
    assert.ok(got[0]!.length > 512);
    assert.equal(decodeDns(got[0]!).answers!.length, 40);
  } finally {
    await srv.close();
  }
});

test('forwarder: a query with no answer times out (and the listener turns that into SERVFAIL)', async () => {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    s.resume(); // reads, never answers
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const dial: DnsDial = async (dest, first) => {
    const s = net.connect(dest.port, dest.host);
    await once(s, 'connect');
    if (first) s.write(first);
    return s;
  };
  const r = new TunnelDnsResolver({
    dial,
    upstream: { type: 'ipv4', host: '127.0.0.1', port },
    timeoutMs: 150,
  });
  const srv = await startDnsServer({ host: '127.0.0.1', port: 0, resolver: r });
  try {
    await assert.rejects(r.resolve(query(NAME, 'A', 5)), /no tunnel DNS answer in 150 ms/);
    const c = dgram.createSocket('udp4');
    c.send(query(NAME, 'A', 6), srv.udpPort, '127.0.0.1');
    const [msg] = (await once(c, 'message')) as [Buffer];
    c.close();
    assert.equal(rcode(msg), 'SERVFAIL');
  } finally {
    r.close();
    await srv.close();
    server.close();
  }
});

test('stub with a canary: a round-robin pool (canary gets another forged address) is still caught by the reply count', async () => {
  const up = await injectingUpstream({ delayMs: 50, dropGenuine: true });
  const canary = await injectingUpstream({ delayMs: 0, dropGenuine: true, forgedIp: '69.171.229.11' });
  const up2 = await injectingUpstream({ delayMs: 50 });
  try {
    const r = new FilteringUdpResolver({
      upstream: { host: '127.0.0.1', port: up.port },
      canary: { host: '127.0.0.1', port: canary.port },
    });
    const d = await r.resolveDetailed(query(NAME, 'A'));
    assert.equal(rcode(d.response), 'SERVFAIL');
    assert.equal(d.forgedCount, 2);
    const r2 = new FilteringUdpResolver({
      upstream: { host: '127.0.0.1', port: up2.port },
      canary: { host: '127.0.0.1', port: canary.port },
    });
    const d2 = await r2.resolveDetailed(query(NAME, 'A'));
    assert.deepEqual(answerIps(d2.response), [TRUE_IP]);
    assert.equal(d2.genuineCount, 1);
  } finally {
    up.close();
    canary.close();
    up2.close();
  }
});
