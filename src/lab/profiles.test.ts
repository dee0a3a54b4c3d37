/** C11: named profiles are lists of behaviours with parameter values. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { profile, profileNames, DEFAULT_PROFILE } from './profiles.js';

test('C11: the measured profiles exist with the measured parameters', () => {
  for (const n of [
    'none',
    'gfw-2020-ss',
    'gfw-2021-2023-fet',
    'gfw-2024-quic',
    'gfw-2025-strict',
    'advanced',
    'blanket-443',
    DEFAULT_PROFILE,
  ]) {
    assert.ok(profileNames().includes(n), n);
  }
  const ss = profile('gfw-2020-ss');
  assert.equal(ss.c6.enabled, false, '2020: no FET rules');
  assert.equal(ss.c7.enabled, true);
  const fet = profile('gfw-2021-2023-fet');
  assert.equal(fet.c6.pBlock, 0.263);
  assert.equal(fet.c6.residualMs, 180_000);
  assert.equal(fet.c3.residualMs, 90_000);
  assert.equal(fet.c3.pTrigger, 0.75);
  assert.equal(fet.c4.reassembleRecords, false);
  assert.equal(fet.c4.residualMs, 180_000);
  assert.equal(fet.c4.injectDelayMs, 18);
  const strict = profile('gfw-2025-strict');
  assert.equal(strict.c4.reassembleRecords, true);
  assert.equal(strict.c6.pBlock, 1);
  assert.equal(profile('none').c6.enabled, false);
});

test('C11: overrides are merged per behaviour and do not leak into the named profile', () => {
  const p = profile('gfw-2021-2023-fet', { c6: { pBlock: 1 } });
  assert.equal(p.c6.pBlock, 1);
  assert.equal(p.c6.residualMs, 180_000);
  assert.equal(profile('gfw-2021-2023-fet').c6.pBlock, 0.263);
  assert.throws(() => profile('gfw-1999'), /unknown lab profile "gfw-1999" \(known: /);
});
