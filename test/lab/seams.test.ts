/**
 * The C5 (QUIC Initial SNI) and C8 (TLS-in-TLS) seams: C5 is not emulated yet (C8 is:
 * src/lab/c8-tls-in-tls.ts, test/lab/c8-d14.test.ts), but an implementation plugs in and gets the flow model, the 3-tuple residual and the C1 feed. Toy implementations
 * stand in for the real classifiers here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { LabWorld } from '../../src/lab/world.js';
import { profile } from '../../src/lab/profiles.js';
import type { FlowShapeClassifier, UdpFlowInspector } from '../../src/lab/seams.js';
import { echoServer, exchange, RATE } from './helpers.js';

test('C5/C8 enabled without an implementation: one "not-emulated" decision each, traffic passes', async () => {
  const w = await LabWorld.start({
    config: profile('advanced', { c5: { enabled: true } }),
    // The world plugs in c8-tls-in-tls.ts by default; an empty list is the bare seam.
    shapeClassifiers: [],
    seed: 1,
    clockRate: RATE,
  });
  try {
    const d = w.log.filter({ rule: 'not-emulated' });
    assert.deepEqual(d.map((x) => x.behaviour).sort(), ['C5', 'C8']);
  } finally {
    await w.stop();
  }
});

test('C5 seam: a datagram the inspector flags passes, later datagrams on the 3-tuple are dropped for the residual', async () => {
  const quicLike: UdpFlowInspector = {
    behaviour: 'C5',
    inspect: (_flow, d, first, outbound) =>
      first && outbound && d.subarray(0, 4).toString() === 'QUIC'
        ? { action: 'DROP_3TUPLE', residualMs: 180_000, features: { sni: 'toy' } }
        : { action: 'PASS' },
  };
  const upstream = dgram.createSocket('udp4');
  upstream.on('message', (m, r) => upstream.send(m, r.port, r.address));
  await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', r));
  const w = await LabWorld.start({
    config: profile('none', { c5: { enabled: true } }),
    seed: 1,
    clockRate: RATE,
    udpInspectors: [quicLike],
  });
  try {
    const front = await w.addRemoteHost(
      { host: '127.0.0.1', port: upstream.address().port },
      { udp: true, logicalPort: 443 },
    );
    const send = async (local: string, payloads: string[]): Promise<number> => {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((r) => s.bind(0, local, r));
      let got = 0;
      s.on('message', () => got++);
      for (const p of payloads) {
        s.send(Buffer.from(p), front.udp!.port, front.udp!.host);
        await new Promise((r) => setTimeout(r, 40));
      }
      await new Promise((r) => setTimeout(r, 100));
      s.close();
      return got;
    };
    assert.equal(
      await send('127.0.1.51', ['QUIC initial', 'follow-up', 'follow-up']),
      1,
      'only the Initial got through',
    );
    assert.equal(w.log.filter({ behaviour: 'C5', action: 'DROP_C2S' }).length, 1);
    assert.equal(
      await send('127.0.1.52', ['dummy first', 'QUIC initial', 'more']),
      3,
      'control: a dummy datagram opened the flow first',
    );
  } finally {
    upstream.close();
    await w.stop();
  }
});

test('C8 seam: three flags on one endpoint within 10 min feed C1', async () => {
  const bigFirst: FlowShapeClassifier = {
    behaviour: 'C8',
    observe: (_f, dir, len) =>
      dir === 'c2s' && len >= 500 ? { action: 'FLAG', features: { len } } : { action: 'PASS' },
  };
  const server = await echoServer();
  const w = await LabWorld.start({
    config: profile('none', { c1: { enabled: true }, c8: { enabled: true } }),
    seed: 1,
    clockRate: RATE,
    shapeClassifiers: [bigFirst],
  });
  try {
    const front = await w.addRemoteHost(server.address);
    assert.equal(
      (await exchange(front.tcp, Buffer.alloc(100, 0x41), { localAddress: '127.0.1.53', waitMs: 3000 }))
        .reaction,
      'DATA',
    );
    for (let i = 0; i < 3; i++)
      await exchange(front.tcp, Buffer.alloc(600, 0x41), { localAddress: '127.0.1.53', waitMs: 100 });
    assert.equal(w.log.filter({ behaviour: 'C8' }).length, 3);
    assert.equal(w.censor.isEndpointBlocked(front.logical.host, front.logical.port), true);
    assert.equal(
      (await exchange(front.tcp, Buffer.alloc(100, 0x41), { localAddress: '127.0.1.53' })).reaction,
      'TIMEOUT',
    );
  } finally {
    await server.close();
    await w.stop();
  }
});
