/**
 * Issue 12's lab rows: Ladder over WebSocket+TLS directly, with the origin's IP null-routed (C1),
 * and through the lab CDN (web-hosts.ts); C6 lets the TLS-opened flows pass where a raw AEAD
 * stream is dropped; C9 in both directions (only 443 passes / 443 blocked) decides which CDN edge
 * survives; the C7 prober pointed at the web port concludes "web server". Each row next to its
 * negative control, through the same runSurvival as `ladder lab run`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSurvival } from '../../src/lab/survival.js';
import { profile } from '../../src/lab/profiles.js';
import { ok, pick, row } from './rows-helpers.js';

/**
 * The CDN path is four hops of TLS and WebSocket: at the default rate (20) and with a 60 s
 * (virtual, 3 s real) request timeout, a loaded machine does not turn slow successes into timeouts.
 */
const SLOW_PATH = { clockRate: 20, requestTimeoutMs: 60_000 } as const;

test('C1 + C6 + C7 (lab-det): WS+TLS passes C6 and the prober sees a web server; the origin IP block kills the direct path, the CDN path survives; raw AEAD is the C6 control', async () => {
  const r = await runSurvival({
    config: profile('lab-det'),
    seed: 1,
    ...SLOW_PATH,
    contenders: pick(
      'ladder AEAD, no shaping',
      'ladder WS+TLS (web front)',
      'ladder WS+TLS, origin IP blocked',
      'ladder WS+TLS via CDN, origin IP blocked',
    ),
  });
  const raw = row(r, 'ladder AEAD, no shaping');
  assert.ok((raw.blockedBy.C6 ?? 0) > 0, 'control: the raw AEAD stream trips C6');
  const web = row(r, 'ladder WS+TLS (web front)');
  assert.equal(ok(web), '5/5');
  assert.equal(web.c6Triggers, 0, 'the TLS ClientHello falls under Ex5');
  assert.equal(web.prober?.web?.verdict, 'web server', JSON.stringify(web.prober?.web?.differences));
  assert.equal(web.prober?.proxy, false);
  const blocked = row(r, 'ladder WS+TLS, origin IP blocked');
  assert.equal(blocked.requests.ok, 0, 'negative control: the origin IP is null-routed');
  assert.ok((blocked.blockedBy.C1 ?? 0) > 0);
  assert.equal(blocked.endpointBlocked, true);
  const cdn = row(r, 'ladder WS+TLS via CDN, origin IP blocked');
  assert.equal(ok(cdn), '5/5', 'the CDN reaches the origin from abroad');
  assert.equal(cdn.endpointBlocked, false);
  assert.equal(cdn.afterVerdict, 'OK');
  assert.equal(cdn.prober?.web?.verdict, 'web server');
  assert.deepEqual(r.findings, []);
});

test('C9 only-443-passes (blanket-except-443): the CDN on 443 survives, its 8443 edge and the raw port are reset', async () => {
  const r = await runSurvival({
    config: profile('blanket-except-443'),
    seed: 1,
    ...SLOW_PATH,
    contenders: pick(
      'ladder AEAD, no shaping',
      'ladder WS+TLS via CDN, origin IP blocked',
      'ladder WS+TLS via CDN :8443',
    ),
  });
  const raw = row(r, 'ladder AEAD, no shaping');
  assert.equal(raw.requests.ok, 0, 'control: port 8388 is reset');
  assert.ok((raw.blockedBy.C9 ?? 0) > 0);
  assert.equal(ok(row(r, 'ladder WS+TLS via CDN, origin IP blocked')), '5/5');
  const alt = row(r, 'ladder WS+TLS via CDN :8443');
  assert.equal(alt.requests.ok, 0, 'control: the 8443 edge is reset');
  assert.ok((alt.blockedBy.C9 ?? 0) > 0);
});

test('C9 blanket-443 (20 Aug 2025): the CDN edge on 443 is reset, the alternate 8443 edge survives', async () => {
  const r = await runSurvival({
    config: profile('blanket-443', { c1: { enabled: true } }),
    seed: 1,
    ...SLOW_PATH,
    contenders: pick('ladder WS+TLS via CDN, origin IP blocked', 'ladder WS+TLS via CDN :8443'),
  });
  const main = row(r, 'ladder WS+TLS via CDN, origin IP blocked');
  assert.equal(main.requests.ok, 0, 'control: 443 is reset');
  assert.ok((main.blockedBy.C9 ?? 0) > 0);
  assert.equal(ok(row(r, 'ladder WS+TLS via CDN :8443')), '5/5');
});
