/** C9: the blanket port event (20 Aug 2025: every new TCP connection to port 443 reset). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpGet } from '../../src/lab/client-ops.js';
import { OPEN_NAME, type LabWorld } from '../../src/lab/world.js';
import { startWorld } from './helpers.js';

const https = (w: LabWorld, local: string) =>
  httpGet({
    clock: w.clock,
    timeoutMs: 20_000,
    minRealMs: 3_000,
    localAddress: local,
    connect: w.sites.open.https,
    hostHeader: OPEN_NAME,
    tls: { servername: OPEN_NAME, ca: w.certs.ca },
  }).then((r) => r.outcome);
const http = (w: LabWorld, local: string) =>
  httpGet({
    clock: w.clock,
    timeoutMs: 20_000,
    minRealMs: 3_000,
    localAddress: local,
    connect: w.sites.open.http,
    hostHeader: OPEN_NAME,
  }).then((r) => r.outcome);

test('C9 blanket-443: every port-443 connection is reset at accept, whatever its content; port 80 passes', async () => {
  const w = await startWorld('blanket-443');
  try {
    assert.equal(await https(w, '127.0.1.91'), 'RST');
    assert.equal(await http(w, '127.0.1.91'), 'OK');
    const d = w.log.filter({ behaviour: 'C9' });
    assert.equal(d.length, 1);
    assert.equal(d[0]!.features.rstAcks, 3);
  } finally {
    await w.stop();
  }
});

test('C9 only inside its window: before and after it, port 443 works', async () => {
  // Window from 60 s to 120 s of virtual time after start.
  const w = await startWorld('none', {
    c9: { enabled: true, ports: [443], windows: [{ startMs: 60_000, endMs: 120_000 }] },
  });
  const wait = (ms: number) => new Promise((r) => w.clock.setTimeout(() => r(undefined), ms));
  try {
    assert.equal(await https(w, '127.0.1.92'), 'OK');
    await wait(70_000);
    assert.equal(await https(w, '127.0.1.92'), 'RST');
    await wait(60_000);
    assert.equal(await https(w, '127.0.1.92'), 'OK');
  } finally {
    await w.stop();
  }
});
