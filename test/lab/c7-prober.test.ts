/**
 * C7: the active prober. A naive echo-on-anything server is classified "proxy" (R1 -> DATA),
 * reaches stage 2 and gets null-routed by C1; a server whose reaction depends on probe length
 * (libev <= 3.2.5 AEAD: TIMEOUT <= 50 bytes, RST >= 51) is caught by rule (ii); a drain-forever
 * server and Ladder's own server are not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDataPlane } from '../../src/server/index.js';
import { startClient } from '../../src/client/index.js';
import { httpGet } from '../../src/lab/client-ops.js';
import { classify, NR1_LENGTHS } from '../../src/lab/prober.js';
import type { LabWorld } from '../../src/lab/world.js';
import { OPEN_NAME } from '../../src/lab/world.js';
import {
  drainServer,
  echoServer,
  exchange,
  fetEligible,
  startServer,
  startWorld,
  type TestServer,
} from './helpers.js';

const C7 = {
  c1: { enabled: true },
  c6: { enabled: true, pBlock: 0 },
  c7: { enabled: true, weighted: false, maxDelayMs: 3_000, concurrency: 8 },
} as const;

async function probeScenario(
  server: TestServer,
): Promise<{ w: LabWorld; endpoint: string; tcp: { host: string; port: number } }> {
  const w = await startWorld('none', C7);
  const { tcp, logical } = await w.addRemoteHost(server.address);
  // A fully encrypted first packet of prober-trigger length (C6 gate p = 0: inspected, not blocked).
  await exchange(tcp, fetEligible(240), { localAddress: '127.0.1.81', waitMs: 50 });
  await w.prober.settled();
  return { w, endpoint: `${logical.host}:${logical.port}`, tcp };
}

test('C7: a naive echo server is classified "proxy", stage 2 is reached, and C1 null-routes it', async () => {
  const server = await echoServer();
  const { w, endpoint, tcp } = await probeScenario(server);
  try {
    const v = w.prober.verdicts.get(endpoint)!;
    assert.ok(v, 'a campaign ran');
    assert.equal(v.proxy, true);
    assert.ok(v.rules.includes('i'), `rules ${v.rules.join(',')}`);
    assert.equal(v.stage2, true);
    assert.ok(
      v.probes.some((p) => p.kind === 'R3') &&
        v.probes.some((p) => p.kind === 'R4') &&
        v.probes.some((p) => p.kind === 'R5'),
    );
    assert.deepEqual(
      v.probes
        .filter((p) => p.kind === 'NR1')
        .map((p) => p.length)
        .sort((a, b) => a - b),
      [...NR1_LENGTHS].sort((a, b) => a - b),
    );
    assert.equal(v.probes.filter((p) => p.kind === 'NR2' && p.length === 221).length, 3);
    // Probes come from the prober's own addresses, never the client's.
    assert.ok(v.probes.every((p) => p.source.startsWith('127.0.30.')));
    assert.equal(w.log.filter({ behaviour: 'C1', action: 'BLOCK_ENDPOINT' }).length, 1);
    // C1 now null-routes the endpoint: the client's bytes arrive, nothing comes back.
    const { host, port } = { host: endpoint.split(':')[0]!, port: Number(endpoint.split(':')[1]) };
    assert.equal(w.censor.isEndpointBlocked(host, port), true);
    const after = await exchange(tcp, Buffer.from('GET / HTTP/1.1\r\n\r\n'), {
      localAddress: '127.0.1.84',
      waitMs: 200,
    });
    assert.equal(after.reaction, 'TIMEOUT', 'the echo never comes back');
    assert.equal(w.log.filter({ behaviour: 'C1', rule: 'null-route', action: 'DROP_S2C' }).length, 1);
  } finally {
    await server.close();
    await w.stop();
  }
});

test('C7: a server whose reaction depends on length (TIMEOUT <= 50, RST >= 51) is flagged by rule (ii)', async () => {
  const server = await startServer((s, rec) => {
    let n = 0;
    s.on('data', (d: Buffer) => {
      rec(d);
      n += d.length;
      if (n >= 51) s.resetAndDestroy();
    });
  });
  const { w, endpoint } = await probeScenario(server);
  try {
    const v = w.prober.verdicts.get(endpoint)!;
    assert.equal(v.proxy, true);
    assert.ok(v.rules.includes('ii'), `rules ${v.rules.join(',')}: ${v.evidence.join('; ')}`);
    assert.equal(v.stage2, false, 'no DATA to R1/R2, so no R3-R5');
  } finally {
    await server.close();
    await w.stop();
  }
});

test('C7 negative control: a drain-forever server is not a proxy and stays reachable', async () => {
  const server = await drainServer();
  const { w, endpoint } = await probeScenario(server);
  try {
    const v = w.prober.verdicts.get(endpoint)!;
    assert.equal(v.proxy, false, v.evidence.join('; '));
    assert.equal(v.stage2, false);
    assert.ok(v.probes.every((p) => p.reaction === 'TIMEOUT'));
    assert.equal(w.log.filter({ behaviour: 'C1' }).length, 0);
  } finally {
    await server.close();
    await w.stop();
  }
});

test('C7 trigger: first packets shorter than 160 bytes or exempt from C6 draw no probes', async () => {
  const server = await echoServer();
  const w = await startWorld('none', C7);
  try {
    const { tcp } = await w.addRemoteHost(server.address);
    await exchange(tcp, fetEligible(120), { localAddress: '127.0.1.82', waitMs: 50 });
    await exchange(tcp, Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), fetEligible(237)]), {
      localAddress: '127.0.1.83',
      waitMs: 50,
    });
    await w.prober.settled();
    assert.equal(w.prober.verdicts.size, 0);
    const t = w.log.filter({ behaviour: 'C7', rule: 'trigger' });
    assert.equal(t.length, 1, 'only the eligible flow reached the trigger');
    assert.equal(t[0]!.features.inRange, false);
  } finally {
    await server.close();
    await w.stop();
  }
});

test('C7 classifier rules (iii)-(v) on synthetic reactions', () => {
  const nr = (length: number, reaction: 'RST' | 'TIMEOUT' | 'FIN', ms = 10_000, id = `x${length}`) => ({
    kind: 'NR1' as const,
    length,
    reaction,
    ms,
    payloadId: id,
    source: '127.0.30.1',
  });
  // (iii): stream-cipher-like mixture, ~13/16 RST above 15 bytes, interleaved with lengths.
  const mixed = Array.from({ length: 32 }, (_, i) => nr(15 + i, i % 6 === 0 ? 'TIMEOUT' : 'RST'));
  assert.ok(classify('e', mixed, 10_000, false).rules.includes('iii'));
  // (iv): same payload, different reactions.
  const twice = [nr(221, 'TIMEOUT', 10_000, 'a'), nr(221, 'RST', 10, 'a')];
  assert.ok(classify('e', twice, 10_000, false).rules.includes('iv'));
  // (v): every connection closed by the server after a fixed 4 s, shorter than the prober's 10 s.
  const fixed = [8, 9, 16, 33, 50, 221].map((l) => nr(l, 'FIN', 4_000 + l));
  assert.ok(classify('e', fixed, 10_000, false).rules.includes('v'));
  // Control: uniform TIMEOUT.
  assert.deepEqual(
    classify(
      'e',
      [8, 9, 16, 221].map((l) => nr(l, 'TIMEOUT')),
      10_000,
      false,
    ).rules,
    [],
  );
});

test("C7: Ladder's own server (tunnel core) is not classified proxy after a real client session", async () => {
  const w = await startWorld('none', C7);
  const dp = await startDataPlane({
    port: 0,
    host: '127.0.0.1',
    keys: [{ id: 'lab', method: 'chacha20-ietf-poly1305', secret: 'lab-password' }],
    allowPrivateDestinations: true,
  });
  const front = await w.addRemoteHost({ host: '127.0.0.1', port: dp.address.port });
  const client = await startClient({
    key: {
      host: front.tcp.host,
      port: front.tcp.port,
      method: 'chacha20-ietf-poly1305',
      password: 'lab-password',
    },
    // Shaping off: a fully encrypted first packet is what draws the prober (D1's negative control).
    shape: false,
    socks: { host: '127.0.0.1', port: 0 },
  });
  try {
    const r = await httpGet({
      clock: w.clock,
      timeoutMs: 30_000,
      minRealMs: 5_000,
      socks: { host: '127.0.0.1', port: client.socksAddress!.port },
      connect: w.sites.open.realHttp,
      hostHeader: OPEN_NAME,
    });
    assert.equal(r.outcome, 'OK');
    await w.prober.settled();
    const v = w.prober.verdicts.get(`${front.logical.host}:${front.logical.port}`);
    assert.ok(
      v,
      'the session triggered a probe campaign (its first packet is fully encrypted, 160-999 bytes)',
    );
    assert.equal(v.proxy, false, `tunnel-core bug: ${v.evidence.join('; ')}`);
    assert.equal(new Set(v.probes.map((p) => p.reaction)).size, 1, 'a single reaction class');
  } finally {
    await client.close();
    await dp.close();
    await w.stop();
  }
});

test('C7 without C6 (2020 profile): high-entropy first packets are probed, a TLS ClientHello is not', async () => {
  const { buildClientHello } = await import('../../src/lab/tls-clienthello.js');
  const server = await drainServer();
  const w = await startWorld('none', {
    c7: { enabled: true, weighted: false, maxDelayMs: 2_000, concurrency: 8 },
  });
  try {
    const a = await w.addRemoteHost(server.address);
    const b = await w.addRemoteHost(server.address);
    const random = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 167 + 13) & 0xff));
    await exchange(a.tcp, random, { localAddress: '127.0.1.85', waitMs: 50 });
    const hello = buildClientHello({
      serverName: 'www.open.lab',
      extensions: [{ type: 0x15, data: Buffer.alloc(200) }],
    });
    await exchange(b.tcp, hello, { localAddress: '127.0.1.86', waitMs: 50 });
    await w.prober.settled();
    assert.deepEqual([...w.prober.verdicts.keys()], [`${a.logical.host}:${a.logical.port}`]);
    assert.equal(w.prober.verdicts.get(`${a.logical.host}:${a.logical.port}`)!.proxy, false);
  } finally {
    await server.close();
    await w.stop();
  }
});
