/** `lab run --only` over the real contender names, which contain commas. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labContenders } from '../../src/cli/commands/lab.js';
import { selectContenders } from '../../src/lab/select.js';

const names = labContenders();
const pick = (...only: string[]): string[] => {
  const s = selectContenders(names, only);
  assert.ok(s.ok, s.ok ? '' : s.error);
  return s.selected.map((c) => c.name);
};

test('--only: a whole name (any case) picks that contender, though the name has a comma', () => {
  assert.deepEqual(pick('ladder AEAD, no shaping'), ['ladder AEAD, no shaping']);
  assert.deepEqual(pick('LADDER sip022, NO SHAPING'), ['ladder SIP022, no shaping']);
  // A part of names with a comma is taken whole too: not "AEAD" or "no shaping" on their own.
  assert.deepEqual(pick('AEAD, no shaping'), [
    'ladder AEAD, no shaping',
    'ladder AEAD, no shaping, 2 fronts (D10/D15)',
  ]);
});

test('--only: repeated, and the comma-separated parts form when the whole value is no name', () => {
  assert.deepEqual(pick('direct -> open site', 'direct -> blocked site'), [
    'direct -> blocked site',
    'direct -> open site',
  ]);
  // Control: parts split on commas still work where the whole is not part of any name.
  assert.deepEqual(pick('open site,SIP022'), [
    'direct -> open site',
    'ladder SIP022, no shaping',
    'ladder SIP022',
  ]);
});

test('--only: an unknown name is one line listing the names', () => {
  for (const bad of [['nothing-matches'], ['open site,nothing-matches'], ['open site', ' ']]) {
    const s = selectContenders(names, bad);
    assert.equal(s.ok, false, bad.join('|'));
    if (s.ok) continue;
    assert.doesNotMatch(s.error, /\n/);
    assert.match(s.error, /^--only "[^"]*" matches no contender; the names: "direct -> blocked site", /);
    assert.ok(s.error.includes('"ladder AEAD, no shaping"'));
  }
});
