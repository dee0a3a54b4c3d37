import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { SaltFilter } from './replay.js';

const salt = (i: number, len = 32): Buffer => {
  const b = Buffer.alloc(len);
  b.writeUInt32BE(i, 0);
  return b;
};

describe('SaltFilter', () => {
  it('remembers exactly what was added (no false positives)', () => {
    const f = new SaltFilter(1000);
    const added = Array.from({ length: 500 }, () => randomBytes(32));
    for (const s of added) assert.equal(f.checkAndAdd(s), true);
    for (const s of added) assert.equal(f.has(s), true);
    for (let i = 0; i < 5000; i++) assert.equal(f.has(randomBytes(32)), false);
    // Near-misses differ in one bit: still not present.
    const s = Buffer.from(added[0]!);
    s[31]! ^= 1;
    assert.equal(f.has(s), false);
  });

  it('checkAndAdd refuses a repeat and does not change state', () => {
    const f = new SaltFilter(4);
    assert.equal(f.checkAndAdd(salt(1)), true);
    assert.equal(f.checkAndAdd(salt(1)), false);
    assert.equal(f.size, 1);
  });

  it('16- and 32-byte salts, and subarray views, are exact keys', () => {
    const f = new SaltFilter(10);
    const big = Buffer.concat([Buffer.alloc(5, 7), salt(9, 16), Buffer.alloc(5, 7)]);
    f.add(big.subarray(5, 21));
    assert.equal(f.has(salt(9, 16)), true);
    assert.equal(f.has(salt(9, 32)), false);
  });

  it('memory stays within 2 x capacity; a salt is kept for at least `capacity` later insertions', () => {
    const N = 100;
    const f = new SaltFilter(N);
    for (let i = 0; i < 10 * N; i++) {
      f.add(salt(i));
      assert.ok(f.size <= 2 * N);
      // Everything from the last N insertions is still remembered.
      for (let j = Math.max(0, i - N + 1); j <= i; j += 7)
        assert.equal(f.has(salt(j)), true, `forgot ${j} at ${i}`);
    }
    // ...and anything older than 2N insertions is forgotten (the only error the filter makes).
    assert.equal(f.has(salt(0)), false);
  });

  it('property: for any insertion sequence, the last `capacity` distinct salts are present and size <= 2*capacity', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 200 }),
        (cap, seq) => {
          const f = new SaltFilter(cap);
          const distinctOrder: number[] = [];
          for (const x of seq) {
            if (f.checkAndAdd(salt(x))) distinctOrder.push(x);
            if (f.size > 2 * cap) return false;
          }
          return distinctOrder.slice(-cap).every((x) => f.has(salt(x)));
        },
      ),
    );
  });

  it('rejects a bad capacity', () => {
    assert.throws(() => new SaltFilter(0), /positive integer/);
    assert.throws(() => new SaltFilter(1.5), /positive integer/);
  });
});

describe('SaltFilter snapshots', () => {
  it('round-trips, keeping order: a smaller capacity keeps the newest', () => {
    const f = new SaltFilter(10);
    for (let i = 0; i < 25; i++) f.add(salt(i, i % 2 ? 16 : 32));
    const snap = f.serialize();
    const g = SaltFilter.deserialize(snap, 10);
    assert.equal(g.size, f.size);
    for (let i = 0; i < 25; i++)
      assert.equal(g.has(salt(i, i % 2 ? 16 : 32)), f.has(salt(i, i % 2 ? 16 : 32)), `salt ${i}`);
    const small = SaltFilter.deserialize(snap, 3);
    assert.equal(small.has(salt(24, 32)), true);
    assert.ok(small.size <= 6);
  });

  it('refuses malformed snapshots with a ProtocolError', () => {
    const snap = new SaltFilter(4);
    snap.add(salt(1));
    const good = snap.serialize();
    assert.throws(() => SaltFilter.deserialize(Buffer.from('nope'), 4), /not a salt filter snapshot/);
    assert.throws(() => SaltFilter.deserialize(good.subarray(0, good.length - 1), 4), /truncated/);
    assert.throws(() => SaltFilter.deserialize(Buffer.concat([good, Buffer.from([1])]), 4), /trailing/);
    assert.equal(SaltFilter.deserialize(new SaltFilter(4).serialize(), 4).size, 0);
  });
});
