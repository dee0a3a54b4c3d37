/**
 * C8 (TLS-in-TLS classifier, c8-tls-in-tls.ts) against ShadowTLS v3's client-side D14 (record
 * cutting, src/transport/shadowtls-cover.ts): HTTPS requests through Ladder's ShadowTLS client
 * and port (each its own outer connection, as ShadowTLS does), with the cutting on (the default)
 * and off, and plain HTTPS browsing for the false-positive rate. Acceptance (docs/glossary.md
 * D14): TPR <= 0.1 with it and FPR <= 0.01, against TPR >= 0.8 without it. A second classifier
 * in the burst view (consecutive records of one direction summed) shows what a client-only
 * cutting cannot hide: its TPR is reported, and asserted high, as the honest limit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LabWorld } from '../../src/lab/world.js';
import { profile } from '../../src/lab/profiles.js';
import { TlsInTlsClassifier } from '../../src/lab/c8-tls-in-tls.js';
import { directPlacement } from '../../src/lab/web-hosts.js';
import { shadowTlsContender } from '../../src/cli/commands/lab-stls.js';
import { RecordCutter } from '../../src/transport/shadowtls-cover.js';
import { RATE } from './helpers.js';
import { browse, httpsThrough, pagesSite, placeWorld, startTunnelClient } from './c8-helpers.js';

test('D14 record cutting: a write is cut into pieces summing to it, each 40-240 bytes until 4 KB are spent, then one record', () => {
  const c = new RecordCutter();
  let spent = 0;
  for (const n of [520, 98, 610]) {
    const sizes = c.cut(n)!;
    assert.equal(
      sizes.reduce((a, b) => a + b, 0),
      n,
    );
    for (const s of sizes.slice(0, -1)) assert.ok(s >= 40 && s <= 240, `piece ${s}`);
    assert.ok(sizes.at(-1)! <= 240);
    spent += n;
  }
  assert.ok(spent < 4096);
  assert.deepEqual(new RecordCutter({ bytes: 100, size: () => 60 }).cut(500), [60, 60, 380]);
  assert.equal(new RecordCutter({ bytes: 0 }).cut(500), undefined, 'bytes 0: the cover is off');
});

test('D14 for ShadowTLS under C8: TPR >= 0.8 with the cutting off, <= 0.1 with it; FPR <= 0.01 on plain HTTPS browsing; the burst view still catches it', async (t) => {
  const c8 = new TlsInTlsClassifier();
  const c8burst = new TlsInTlsClassifier({ burst: true });
  // C1 off while measuring (a blocked endpoint would stop the sessions).
  const w = await LabWorld.start({
    config: profile('advanced', { c1: { enabled: false } }),
    seed: 1,
    clockRate: RATE,
    shapeClassifiers: [c8, c8burst],
  });
  const site = await pagesSite(w);
  const rate = (c: TlsInTlsClassifier, before: { tlsFlows: number; flagged: number }): number =>
    (c.stats.flagged - before.flagged) / (c.stats.tlsFlows - before.tlsFlows);
  /** `n` HTTPS requests through one client: each is its own ShadowTLS connection. */
  const tunnelRates = async (cover: boolean, n: number): Promise<[number, number]> => {
    const ct = shadowTlsContender('c8', '', {
      method: 'chacha20-ietf-poly1305',
      secret: 'c8-pass',
      place: directPlacement(),
      cover,
    });
    const srv = await ct.startServer({ remoteLookup: w.remoteLookup, certs: w.certs });
    const p = await directPlacement()(placeWorld(w), srv.address);
    const before = { ...c8.stats };
    const beforeBurst = { ...c8burst.stats };
    const h = await startTunnelClient(ct, w, p.dial);
    try {
      for (let i = 0; i < n; i++) await httpsThrough(w, h.socks);
    } finally {
      await h.stop();
      await srv.stop();
    }
    assert.equal(c8.stats.tlsFlows - before.tlsFlows, n, 'one outer TLS flow per request');
    return [rate(c8, before), rate(c8burst, beforeBurst)];
  };
  try {
    const N = 12;
    const [tprOff, burstOff] = await tunnelRates(false, N);
    const [tprOn, burstOn] = await tunnelRates(true, N);
    const before = { ...c8.stats };
    const beforeBurst = { ...c8burst.stats };
    const B = 100;
    for (let i = 0; i < B; i++) await browse(site.at, w.certs.ca);
    const fpr = rate(c8, before);
    const fprBurst = rate(c8burst, beforeBurst);
    t.diagnostic(
      `C8 TPR without D14 ${tprOff.toFixed(2)}, with D14 ${tprOn.toFixed(2)} (${N} connections each); FPR ${fpr} over ${B} browsing connections`,
    );
    t.diagnostic(
      `burst view: TPR without D14 ${burstOff.toFixed(2)}, with D14 ${burstOn.toFixed(2)}; FPR ${fprBurst}`,
    );
    assert.ok(tprOff >= 0.8, `control: without D14 the classifier must catch the tunnel (TPR ${tprOff})`);
    assert.ok(tprOn <= 0.1, `D14: TPR ${tprOn}`);
    assert.ok(fpr <= 0.01, `FPR ${fpr}`);
    // The honest limit: summing a direction's records undoes any cutting the client alone can do.
    assert.ok(burstOn >= 0.8, `burst view with D14: TPR ${burstOn}`);
  } finally {
    await site.close();
    await w.stop();
  }
});
