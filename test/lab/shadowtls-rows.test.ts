/**
 * The ShadowTLS v3 rows of `ladder lab run` (src/cli/commands/lab-stls.ts), through the same
 * runSurvival: on logical 443 the port passes C6 (p = 1) (its first packet is a real ClientHello) and the
 * C7 prober sees the handshake site; a replayed genuine ClientHello gets the site's answer; the
 * protocol's 4-byte tell shows; C1 on the server's address kills it (no CDN: the honest row);
 * during a C9 event that lets only 443 pass it survives where raw AEAD on 8388 is reset; under
 * C8 the client's D14 record cutting is not flagged where the cutting-off control is. The
 * report is the same for the same seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSurvival } from '../../src/lab/survival.js';
import { profile } from '../../src/lab/profiles.js';
import { ok, pick, row } from './rows-helpers.js';
import { formatSurvivalTable } from '../../src/lab/survival-format.js';

/** Web probes wait 2 s for a close (5 s in `lab run`): every probe here gets its answer well before. */
const RUN = { clockRate: 40, requestTimeoutMs: 60_000, webProbeWaitMs: 2_000 } as const;
const STLS = 'ladder ShadowTLS v3';
const OFF = 'ladder ShadowTLS v3, D14 off';
const BLOCKED = 'ladder ShadowTLS v3, origin IP blocked';

test('ShadowTLS rows (advanced: C1, C3, C4, C6 p = 1, C7, C8): 5/5, no C6, the prober sees the site, a replay gets the site, the 4-byte tell shows; D14 off is flagged by C8, D14 on is not; C1 on the address kills it; same report for the same seed', async () => {
  const run = () =>
    runSurvival({ config: profile('advanced'), seed: 7, ...RUN, contenders: pick(STLS, OFF, BLOCKED) });
  const r = await run();
  const again = await run();
  assert.deepEqual(again, r, 'same seed, same report');
  const s = row(r, STLS);
  assert.equal(ok(s), '5/5');
  assert.equal(s.c6Triggers, 0, 'the first packet is a ClientHello (Ex5)');
  assert.deepEqual(s.blockedBy, {}, 'D14 on: no C8 flag');
  assert.equal(s.prober?.web?.verdict, 'web server', JSON.stringify(s.prober?.web?.differences));
  assert.equal(s.prober?.proxy, false);
  assert.equal(s.prober?.replay?.replay, 'same as the site', 'a replayed hello is relayed to the site');
  assert.equal(s.prober?.replay?.tell, 'records 4 bytes longer (ShadowTLS v3)');
  assert.equal(s.afterVerdict, 'OK');
  const off = row(r, OFF);
  assert.equal(ok(off), '5/5');
  assert.deepEqual(off.blockedBy, { C8: 2 }, 'negative control: both HTTPS requests flagged as TLS-in-TLS');
  const b = row(r, BLOCKED);
  assert.equal(b.requests.ok, 0, 'no CDN: a null-routed address is the end of it');
  assert.ok((b.blockedBy.C1 ?? 0) > 0);
  assert.equal(b.endpointBlocked, true);
  assert.equal(b.afterVerdict, 'TIMEOUT');
  assert.deepEqual(r.findings, []);
  const table = formatSurvivalTable(r);
  assert.match(table, /ladder ShadowTLS v3 +5\/5 +- +web server; replay: site; tell: \+4 +ok/);
});

test('ShadowTLS rows: C9 only-443-passes (blanket-except-443) lets the port on 443 through, raw AEAD on 8388 is reset', async () => {
  const c9 = await runSurvival({
    config: profile('blanket-except-443'),
    seed: 1,
    ...RUN,
    contenders: pick('ladder AEAD, no shaping', STLS),
  });
  const raw = row(c9, 'ladder AEAD, no shaping');
  assert.equal(raw.requests.ok, 0, 'control: port 8388 is reset');
  assert.ok((raw.blockedBy.C9 ?? 0) > 0);
  assert.equal(ok(row(c9, STLS)), '5/5');
  assert.deepEqual(row(c9, STLS).blockedBy, {});
});
