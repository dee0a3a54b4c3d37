import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRng } from './rng.js';
import { DecisionLog } from './decision-log.js';

test('SeededRng replays exactly for a seed and differs across seeds', () => {
  const a = new SeededRng(42);
  const b = new SeededRng(42);
  const c = new SeededRng(43);
  const xs = Array.from({ length: 20 }, () => a.next());
  assert.deepEqual(
    xs,
    Array.from({ length: 20 }, () => b.next()),
  );
  assert.notDeepEqual(
    xs,
    Array.from({ length: 20 }, () => c.next()),
  );
  assert.ok(xs.every((x) => x >= 0 && x < 1));
});

test('SeededRng.fork streams are independent of draws on the parent', () => {
  const a = new SeededRng(7);
  const f1 = a.fork('c6').bytes(8);
  a.next();
  a.next();
  assert.deepEqual(a.fork('c6').bytes(8), f1);
  assert.notDeepEqual(a.fork('c3').bytes(8), f1);
});

test('SeededRng.chance(1) and chance(0) are deterministic; p=0.263 is near its rate', () => {
  const r = new SeededRng(1);
  assert.equal(r.chance(1), true);
  assert.equal(r.chance(0), false);
  let hits = 0;
  for (let i = 0; i < 20_000; i++) if (r.chance(0.263)) hits++;
  assert.ok(Math.abs(hits / 20_000 - 0.263) < 0.015, `rate ${hits / 20_000}`);
});

test('DecisionLog keeps one record per decision and prints JSON lines with hex buffers', () => {
  let now = 1000;
  const log = new DecisionLog(() => now);
  now = 1500;
  log.record({
    behaviour: 'C6',
    rule: 'fet',
    features: { payload: Buffer.from([1, 2]) },
    action: 'DROP_C2S',
  });
  log.record({ behaviour: 'C6', rule: 'fet', features: {}, action: 'PASS' });
  assert.equal(log.records.length, 2);
  assert.equal(log.records[0]!.t, 500);
  assert.equal(log.records[0]!.blocked, true);
  assert.equal(log.records[1]!.blocked, false);
  assert.equal(log.filter({ action: 'PASS' }).length, 1);
  const lines = log
    .toJsonLines()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { features: { payload?: string } });
  assert.equal(lines.length, 2);
  assert.equal(lines[0]!.features.payload, '0102');
});
