/**
 * D8 in the lab: TLS-record fragmentation as a direct route to a site whose only block is SNI
 * filtering (C4). The shipped client (`startClient`) is given the rule
 * `ip-cidr,127.0.10.0/24,fragment`, so its FragmentDialer connects to the site directly and
 * writes the application's ClientHello split across TLS records (default `name-middle`, one
 * write per record). A Node TLS client fetches https://www.blocked.lab through the client's
 * SOCKS5 inbound.
 *
 *  - C4 parsing the first TLS record only (the GFW as measured to April 2024): the fetch succeeds;
 *    the censor logs the ClientHello as `partial` and passes it.
 *  - Negative control 1: C4 with TLS-record reassembly (the late-2025 CERNET/China Mobile
 *    reports): the same fragmented fetch is reset, rule `sni-reassembled`.
 *  - Negative control 2: the same client with the rule `direct` (no fragmentation) under
 *    first-record C4: the whole name is in the first record and the fetch is reset.
 * Each case uses its own world, so the 180 s C4 residual of one cannot explain another.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpGet } from '../../src/lab/client-ops.js';
import { ADDR, BLOCKED_NAME, OPEN_NAME, type LabWorld } from '../../src/lab/world.js';
import { startClient } from '../../src/client/index.js';
import { parseRuleList } from '../../src/client/routing/rules.js';
import { startWorld } from './helpers.js';

async function fetchVia(
  w: LabWorld,
  route: 'fragment' | 'direct',
  site: 'blocked' | 'open',
): Promise<{ outcome: string; body?: string }> {
  const rules = parseRuleList(`ip-cidr,${ADDR.blockedSite.replace(/\.\d+$/, '.0')}/24,${route}\n`);
  // The tunnel is never used here: every lab site matches the rule. The key only has to parse.
  const client = await startClient({
    socks: { host: '127.0.0.1', port: 0 },
    key: { host: '127.0.0.1', port: 9, method: 'chacha20-ietf-poly1305', password: 'unused' },
    rules,
  });
  try {
    const name = site === 'blocked' ? BLOCKED_NAME : OPEN_NAME;
    const r = await httpGet({
      clock: w.clock,
      timeoutMs: 30_000,
      minRealMs: 3_000,
      socks: { host: '127.0.0.1', port: client.socksAddress!.port },
      connect: w.sites[site].https,
      hostHeader: name,
      tls: { servername: name, ca: w.certs.ca },
    });
    return { outcome: r.outcome, ...(r.body !== undefined ? { body: r.body } : {}) };
  } finally {
    await client.close();
  }
}

test('D8: fragmented ClientHello reaches the SNI-blocked site under first-record C4; unfragmented is reset (negative control 2)', async () => {
  const w = await startWorld('lab-det', { c4: { reassembleRecords: false } });
  try {
    const frag = await fetchVia(w, 'fragment', 'blocked');
    assert.equal(frag.outcome, 'OK', 'fragmented fetch of the blocked site');
    assert.match(frag.body ?? '', /ladder lab site www\.blocked\.lab\//);
    const c4 = w.log.filter({ behaviour: 'C4' });
    assert.equal(c4.length, 1);
    assert.equal(c4[0]!.action, 'PASS');
    assert.equal(c4[0]!.features.parsed, 'partial', 'the first record does not hold the whole name');
    assert.equal(c4[0]!.flow!.cIP, '127.0.0.1', 'the client connected directly (no tunnel)');
    assert.equal(c4[0]!.flow!.sIP, ADDR.blockedSite);

    // Negative control 2: no fragmentation -> reset (the C4 residual then covers the 3-tuple).
    const plain = await fetchVia(w, 'direct', 'blocked');
    assert.notEqual(plain.outcome, 'OK', `unfragmented: ${plain.outcome}`);
    const rst = w.log.filter({ behaviour: 'C4', action: 'RST_BOTH' });
    assert.equal(rst.length, 1);
    assert.equal(rst[0]!.rule, 'sni-first-record');
    assert.equal(rst[0]!.features.sni, BLOCKED_NAME);
    assert.equal(rst[0]!.features.records, 1);
    console.log(
      `# D8 first-record C4: fragmented OK; unfragmented ${plain.outcome} (C4 sni-first-record RST_BOTH)`,
    );
  } finally {
    await w.stop();
  }
});

test('D8 negative control 1: with TLS-record reassembly the fragmented ClientHello is reset; open names still pass', async () => {
  const w = await startWorld('lab-det', { c4: { reassembleRecords: true } });
  try {
    const frag = await fetchVia(w, 'fragment', 'blocked');
    assert.notEqual(frag.outcome, 'OK', `fragmented, reassembling censor: ${frag.outcome}`);
    const rst = w.log.filter({ behaviour: 'C4', action: 'RST_BOTH' });
    assert.equal(rst.length, 1);
    assert.equal(rst[0]!.rule, 'sni-reassembled');
    assert.ok((rst[0]!.features.records as number) >= 2, `records ${String(rst[0]!.features.records)}`);
    const open = await fetchVia(w, 'fragment', 'open');
    assert.equal(open.outcome, 'OK', 'the open site, fragmented, with reassembly on');
    console.log(
      `# D8 reassembling C4: fragmented ${frag.outcome} (sni-reassembled over ${String(rst[0]!.features.records)} records); open site OK`,
    );
  } finally {
    await w.stop();
  }
});
