/**
 * The default survival report's claims, with the real contenders `ladder lab run` uses:
 * shadowsocks-libev's first packets trigger C6; Ladder's current server is probed and never
 * classified "proxy"; Ladder with the D1/D3 shaping draws no C6 trigger at all.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labContenders } from '../../src/cli/commands/lab.js';
import { runSurvival } from '../../src/lab/survival.js';
import { DEFAULT_PROFILE, profile } from '../../src/lab/profiles.js';
import { which } from '../helpers/peers.js';
import { prerequisiteMissing } from '../helpers/prereq.js';

const peers = which('ss-server') !== undefined && which('ss-local') !== undefined;
if (!peers)
  prerequisiteMissing(
    'ss-server/ss-local (shadowsocks-libev) not installed',
    'skipping the shadowsocks-libev row',
  );

test('survival under the default profile: libev triggers C6, Ladder (SIP004, SIP022) is never "proxy", default D1/D3 shaping passes (SIP004 and SIP022), auto routing loses no request', async () => {
  const want = [
    'ladder AEAD, no shaping',
    'ladder AEAD (default)',
    'ladder SIP022, no shaping',
    'ladder SIP022',
    'ladder auto routing',
    ...(peers ? ['shadowsocks-libev AEAD'] : []),
  ];
  const contenders = labContenders().filter((c) => want.includes(c.name));
  const config = profile(DEFAULT_PROFILE, { c7: { maxDelayMs: 5_000, concurrency: 8 } });
  const r = await runSurvival({ config, seed: 1, clockRate: 40, contenders });
  const row = (name: string) => r.contenders.find((c) => c.name === name)!;

  assert.deepEqual(r.findings, [], 'no tunnel-core finding');
  // The negative controls: unshaped first packets (SIP004 and SIP022) are caught by C6.
  for (const name of ['ladder AEAD, no shaping', 'ladder SIP022, no shaping']) {
    const ladder = row(name);
    assert.equal(ladder.error, undefined, name);
    assert.ok(ladder.c6Triggers >= 1, `${name}: fully encrypted first packets`);
    assert.equal(ladder.prober?.probed, true, name);
    assert.equal(ladder.prober?.proxy, false, `${name}: ${ladder.prober?.evidence.join('; ')}`);
    assert.equal(ladder.endpointBlocked, false, name);
  }

  for (const name of ['ladder AEAD (default)', 'ladder SIP022']) {
    const shaped = row(name);
    assert.equal(shaped.error, undefined, name);
    assert.equal(shaped.c6Triggers, 0, `${name}: 0 C6 triggers`);
    assert.equal(shaped.requests.ok, shaped.requests.total, `${name}: every request`);
    assert.equal(shaped.prober?.proxy ?? false, false, name);
    assert.equal(shaped.endpointBlocked, false, name);
  }

  // Auto routing: every request succeeds; the only interference is the censor meeting its direct
  // attempts (C3/C4 resets and their residuals), never its tunnel (shaped: no C6).
  const auto = row('ladder auto routing');
  assert.equal(auto.error, undefined);
  assert.equal(
    auto.requests.ok,
    auto.requests.total,
    auto.requests.steps.map((s) => `${s.step}=${s.outcome}`).join(' '),
  );
  assert.equal(auto.c6Triggers, 0);
  assert.ok((auto.blockedBy.C3 ?? 0) + (auto.blockedBy.C4 ?? 0) >= 1, JSON.stringify(auto.blockedBy));
  assert.equal(auto.afterVerdict, 'OK');

  if (peers) {
    const libev = row('shadowsocks-libev AEAD');
    assert.equal(libev.error, undefined);
    assert.ok(libev.c6Triggers >= 1, "shadowsocks-libev's first packets trigger C6");
    assert.ok(libev.residualHits >= 1);
  }
});
