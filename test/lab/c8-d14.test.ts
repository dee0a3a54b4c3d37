/**
 * C8 (TLS-in-TLS classifier, c8-tls-in-tls.ts) against D14 (mux cover, transport/mux-cover.ts):
 * HTTPS sessions through Ladder's WebSocket+TLS tunnel, each on a fresh outer connection, with
 * and without the cover, and plain HTTPS browsing (browser-sized requests, 1-8 KB pages,
 * keep-alive) for the false-positive rate. Acceptance (docs/glossary.md D14): TPR <= 0.1 with
 * the cover and FPR <= 0.01, against TPR >= 0.8 without it. This test is only as strong as our
 * classifier, whose parameters are ours.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { LabWorld } from '../../src/lab/world.js';
import { profile } from '../../src/lab/profiles.js';
import { matchInnerHandshake, TlsInTlsClassifier } from '../../src/lab/c8-tls-in-tls.js';
import { directPlacement } from '../../src/lab/web-hosts.js';
import { webContender } from '../../src/cli/commands/lab-web.js';
import { RATE } from './helpers.js';
import { browse, httpsThrough, pagesSite, placeWorld, startTunnelClient } from './c8-helpers.js';

test('C8 pattern: inner ClientHello, server flight, inner Finished; a padded Finished or a plain request does not match', () => {
  assert.ok(
    matchInnerHandshake([
      ['c2s', 440],
      ['s2c', 900],
      ['s2c', 430],
      ['c2s', 99],
    ]),
  );
  assert.equal(
    matchInnerHandshake([
      ['c2s', 440],
      ['s2c', 1330],
      ['c2s', 520],
    ]),
    undefined,
  );
  assert.equal(
    matchInnerHandshake([
      ['c2s', 440],
      ['s2c', 600],
      ['c2s', 99],
    ]),
    undefined,
    'flight under 1 KB',
  );
  assert.equal(
    matchInnerHandshake([
      ['c2s', 150],
      ['s2c', 1330],
      ['c2s', 99],
    ]),
    undefined,
  );
});

/** A TLS record header + body of `n` bytes. */
const rec = (type: number, n: number) =>
  Buffer.concat([Buffer.of(type, 3, 3, n >> 8, n & 0xff), randomBytes(n)]);

test('C8 record tracking: TLS 1.3 outer handshake skipped, records split across chunks, flagged once; a non-TLS flow is ignored', () => {
  const c = new TlsInTlsClassifier();
  const flow = { proto: 'tcp' as const, cIP: '127.0.1.5', cPort: 4000, sIP: '127.0.20.9', sPort: 443 };
  const o = (dir: 'c2s' | 's2c', b: Buffer) => c.observe(flow, dir, b.length, b).action;
  assert.equal(o('c2s', rec(0x16, 300)), 'PASS'); // ClientHello
  assert.equal(o('s2c', Buffer.concat([rec(0x16, 90), rec(0x14, 1), rec(0x17, 2000)])), 'PASS'); // SH, CCS, encrypted flight
  assert.equal(o('c2s', Buffer.concat([rec(0x14, 1), rec(0x17, 53)])), 'PASS'); // the outer Finished: skipped
  const ch = rec(0x17, 491);
  assert.equal(o('c2s', ch.subarray(0, 3)), 'PASS');
  assert.equal(o('c2s', ch.subarray(3)), 'PASS');
  assert.equal(o('s2c', Buffer.concat([rec(0x17, 700), rec(0x17, 700)])), 'PASS');
  assert.equal(o('c2s', rec(0x17, 150)), 'FLAG');
  assert.equal(o('c2s', rec(0x17, 150)), 'PASS', 'once per flow');
  const other = { ...flow, cPort: 4001 };
  assert.equal(c.observe(other, 'c2s', 5, Buffer.from('GET /')).action, 'PASS');
  assert.deepEqual(c.stats, { tlsFlows: 1, flagged: 1 });
});

test('D14 under C8: TLS-in-TLS TPR >= 0.8 without the cover, <= 0.1 with it; FPR <= 0.01 on plain HTTPS browsing; K = 3 flags feed C1', async (t) => {
  const c8 = new TlsInTlsClassifier();
  // C1 off while measuring (a blocked endpoint would stop the sessions); the K = 3 feed is checked after.
  const w = await LabWorld.start({
    config: profile('advanced', { c1: { enabled: false } }),
    seed: 1,
    clockRate: RATE,
    shapeClassifiers: [c8],
  });
  const site = await pagesSite(w);
  /** `n` sessions, each a fresh client (so a fresh outer connection) with one HTTPS request. */
  const tunnelRate = async (cover: boolean, n: number): Promise<number> => {
    const ct = webContender('c8', '', {
      method: 'chacha20-ietf-poly1305',
      secret: 'c8-pass',
      host: 'c8.web.lab',
      place: directPlacement(),
      ...(cover ? {} : { cover: false as const }),
    });
    const srv = await ct.startServer({ remoteLookup: w.remoteLookup, certs: w.certs });
    const p = await directPlacement()(placeWorld(w), srv.address);
    const before = { ...c8.stats };
    try {
      for (let i = 0; i < n; i++) {
        const h = await startTunnelClient(ct, w, p.dial);
        try {
          await httpsThrough(w, h.socks);
        } finally {
          await h.stop();
        }
      }
    } finally {
      await srv.stop();
    }
    const flows = c8.stats.tlsFlows - before.tlsFlows;
    assert.equal(flows, n, 'one outer TLS flow per session');
    return (c8.stats.flagged - before.flagged) / flows;
  };
  try {
    const N = 12;
    const tprOff = await tunnelRate(false, N);
    const tprOn = await tunnelRate(true, N);
    const before = { ...c8.stats };
    const B = 100;
    for (let i = 0; i < B; i++) await browse(site.at, w.certs.ca);
    const fpr = (c8.stats.flagged - before.flagged) / (c8.stats.tlsFlows - before.tlsFlows);
    t.diagnostic(
      `C8 TPR without D14 ${tprOff} (${N} sessions), with D14 ${tprOn}; FPR ${fpr} over ${B} browsing connections`,
    );
    assert.ok(tprOff >= 0.8, `control: without D14 the classifier must catch the tunnel (TPR ${tprOff})`);
    assert.ok(tprOn <= 0.1, `D14: TPR ${tprOn}`);
    assert.ok(fpr <= 0.01, `FPR ${fpr}`);
    // The action: C8 flags of one endpoint reach K = 3 -> a C1 block decision (enforcement is off here).
    const flags = w.log.filter({ behaviour: 'C8' }).filter((d) => d.rule === 'tls-in-tls');
    assert.ok(flags.length >= 3);
    assert.ok(
      w.log.filter({ behaviour: 'C1' }).some((d) => d.features.reason === 'C8 flags'),
      'K = 3 flags feed C1',
    );
  } finally {
    await site.close();
    await w.stop();
  }
});
