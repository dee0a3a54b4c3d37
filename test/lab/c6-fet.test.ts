/** C6: fully-encrypted-traffic detection on the first client data chunk (Ex1-Ex5), 180 s residual. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/shared/clock.js';
import { Censor } from '../../src/lab/censor.js';
import { profile } from '../../src/lab/profiles.js';
import type { LabWorld } from '../../src/lab/world.js';
import { drainServer, exchange, fetEligible, sleepReal, startWorld, type TestServer } from './helpers.js';

const DET = { c6: { enabled: true, pBlock: 1 } } as const;

/** Each exemption alone, applied to an otherwise eligible 200-byte payload. */
function exemptVariants(): Record<string, Buffer> {
  const base = fetEligible(200);
  const ex1 = Buffer.from(base);
  for (let i = 0; i < ex1.length; i += 2) ex1[i] = 0x01; // low popcount, still non-printable
  const ex2 = Buffer.concat([Buffer.from('Ladder'), base.subarray(6)]);
  // Two of every three bytes printable 'U' (popcount 4), runs of 2, first six not all printable.
  const ex3 = Buffer.from(base.map((b, i) => (i % 3 === 2 ? b : 0x55)));
  const ex4 = Buffer.from(base);
  ex4.fill(0x55, 50, 71); // a run of 21 'U'
  const ex5 = Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), base.subarray(3)]);
  return { ex1, ex2, ex3, ex4, ex5 };
}

async function withBackend(
  fn: (w: LabWorld, server: TestServer, front: { host: string; port: number }) => Promise<void>,
  overrides = DET,
): Promise<void> {
  const w = await startWorld('none', overrides);
  const server = await drainServer();
  try {
    const { tcp } = await w.addRemoteHost(server.address);
    await fn(w, server, tcp);
  } finally {
    await server.close();
    await w.stop();
  }
}

test('C6 det: a first packet failing every exemption is blocked; later bytes never reach the server', () =>
  withBackend(async (w, server, front) => {
    const first = fetEligible(200);
    await exchange(front, first, {
      localAddress: '127.0.1.61',
      then: Buffer.from('more bytes after the trigger'),
      waitMs: 200,
    });
    const d = w.log.filter({ behaviour: 'C6', action: 'DROP_C2S' });
    assert.equal(d.length, 1);
    assert.equal(d[0]!.features.eligible, true);
    assert.deepEqual(
      [d[0]!.features.ex1, d[0]!.features.ex2, d[0]!.features.ex3, d[0]!.features.ex4, d[0]!.features.ex5],
      [false, false, false, false, false],
    );
    // The inspected packet had already passed the on-path tap; nothing after it did.
    await sleepReal(50);
    assert.deepEqual(server.received[0], first);
  }));

test('C6 det: each exemption alone lets the same payload pass', () =>
  withBackend(async (w, server, front) => {
    const variants = exemptVariants();
    let i = 0;
    for (const [name, payload] of Object.entries(variants)) {
      const local = `127.0.1.${70 + i++}`;
      await exchange(front, payload, { localAddress: local, then: Buffer.from('second'), waitMs: 150 });
      const d = w.log.records.filter((x) => x.behaviour === 'C6' && x.flow?.cIP === local);
      assert.equal(d.length, 1, name);
      assert.equal(d[0]!.action, 'PASS', name);
      assert.equal(d[0]!.features[name], true, `${name} holds`);
      const others = ['ex1', 'ex2', 'ex3', 'ex4', 'ex5'].filter(
        (e) => e !== name && d[0]!.features[e] === true,
      );
      assert.deepEqual(others, [], `${name} is the only exemption that holds`);
    }
    await sleepReal(50);
    // Every connection delivered both writes.
    for (const got of server.received) assert.ok(got.toString('latin1').endsWith('second'));
  }));

test('C6 residual: new connections on the same 3-tuple are blackholed for 180 s; other clients are not', () =>
  withBackend(async (w, _server, front) => {
    await exchange(front, fetEligible(200), { localAddress: '127.0.1.62', waitMs: 100 });
    // Same client, same server port, innocuous payload: blackholed.
    const r = await exchange(front, Buffer.from('GET / HTTP/1.1\r\n\r\n'), {
      localAddress: '127.0.1.62',
      waitMs: 150,
    });
    assert.equal(r.reaction, 'TIMEOUT');
    assert.equal(w.log.filter({ behaviour: 'residual', rule: 'c6-fet', action: 'BLACKHOLE_NEW' }).length, 1);
    // Another client address: passes (its first packet is exempt by Ex5).
    await exchange(front, Buffer.from('GET / HTTP/1.1\r\n\r\n'), { localAddress: '127.0.1.63', waitMs: 100 });
    assert.equal(w.log.filter({ behaviour: 'residual' }).length, 1);
    await new Promise((res) => w.clock.setTimeout(() => res(undefined), 181_000));
    await exchange(front, Buffer.from('GET / HTTP/1.1\r\n\r\n'), { localAddress: '127.0.1.62', waitMs: 100 });
    assert.equal(w.log.filter({ behaviour: 'residual' }).length, 1, 'expired after 180 s');
  }));

test('C6 looks at the first chunk only: a low-entropy first packet followed by random bytes passes', () =>
  withBackend(async (w, server, front) => {
    await exchange(front, Buffer.alloc(50), {
      localAddress: '127.0.1.64',
      then: fetEligible(200),
      waitMs: 150,
    });
    assert.equal(w.log.filter({ behaviour: 'C6', action: 'DROP_C2S' }).length, 0);
    await sleepReal(30);
    assert.equal(server.received[0]!.length, 250);
  }));

test('C6 realistic p_block = 0.263 (seeded), UDP never inspected, inbound flows never inspected', () => {
  const clock = new ManualClock();
  const censor = new Censor({ config: profile('none', { c6: { enabled: true } }), clock, seed: 2023 });
  const payload = fetEligible(300);
  let blocked = 0;
  const N = 4000;
  for (let i = 0; i < N; i++) {
    // Distinct client addresses so residual blocks do not interfere.
    const flow = censor.newTcpFlow(
      {
        cIP: `127.0.1.${i % 250}`,
        cPort: 40000 + i,
        sIP: `127.0.20.${1 + Math.floor(i / 250)}`,
        sPort: 8388,
      },
      { host: '127.0.0.1', port: 1 },
    );
    if (censor.onClientData(flow, payload).action === 'DROP_C2S') blocked++;
  }
  assert.ok(Math.abs(blocked / N - 0.263) < 0.03, `blocked share ${blocked / N}`);
  // Inbound: a foreign client reaching a domestic server.
  const inbound = censor.newTcpFlow(
    { cIP: '127.0.20.9', cPort: 1, sIP: '127.0.1.9', sPort: 8388 },
    { host: '127.0.0.1', port: 1 },
  );
  assert.equal(censor.onClientData(inbound, payload).action, 'PASS');
  // UDP: only C2 looks at datagrams.
  assert.deepEqual(
    censor.onUdpClientDatagram({ cIP: '127.0.1.1', cPort: 1, sIP: '127.0.20.1', sPort: 8388 }, payload),
    { drop: false, forged: [], genuine: 0 },
  );
});

test('C6 capacity knob: beyond the threshold of active residuals, new ones last ~10 s (off by default)', () => {
  const clock = new ManualClock();
  const mk = (threshold: number) =>
    new Censor({
      config: profile('none', { c6: { enabled: true, pBlock: 1, underLoadThreshold: threshold } }),
      clock,
      seed: 1,
    });
  for (const threshold of [2, 0]) {
    const censor = mk(threshold);
    for (let i = 0; i < 3; i++) {
      const f = censor.newTcpFlow(
        { cIP: '127.0.1.1', cPort: 1000 + i, sIP: '127.0.20.1', sPort: 9000 + i },
        { host: '127.0.0.1', port: 1 },
      );
      censor.onClientData(f, fetEligible(200));
    }
    const ms = censor.log.filter({ behaviour: 'C6', action: 'DROP_C2S' }).map((d) => d.features.residualMs);
    assert.deepEqual(ms, threshold ? [180_000, 180_000, 10_000] : [180_000, 180_000, 180_000]);
  }
});
