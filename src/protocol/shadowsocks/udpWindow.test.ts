import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PacketWindow } from './udpWindow.js';

describe('PacketWindow', () => {
  it('accepts in-order IDs once, refuses repeats', () => {
    const w = new PacketWindow();
    for (let i = 0n; i < 5000n; i++) assert.ok(w.accept(i));
    for (let i = 4990n; i < 5000n; i++) assert.ok(!w.accept(i));
    assert.equal(w.last, 4999n);
  });

  it('accepts reordering inside the window, refuses IDs older than it', () => {
    const w = new PacketWindow(2048);
    assert.ok(w.accept(10_000n));
    assert.ok(w.check(10_000n - 2015n));
    assert.ok(w.accept(10_000n - 2015n));
    assert.ok(!w.accept(10_000n - 2015n));
    assert.ok(!w.check(10_000n - 2016n));
    assert.ok(!w.accept(0n));
    assert.ok(w.accept(9_999n));
  });

  it('check() does not change state', () => {
    const w = new PacketWindow();
    assert.ok(w.check(7n));
    assert.ok(w.check(7n));
    assert.equal(w.last, -1n);
    assert.ok(w.accept(7n));
    assert.ok(!w.check(7n));
  });

  it('handles the top of the u64 range and refuses values outside it', () => {
    const w = new PacketWindow();
    const top = 0xffff_ffff_ffff_ffffn;
    assert.ok(w.accept(top - 1n));
    assert.ok(w.accept(top));
    assert.ok(!w.accept(top));
    assert.ok(!w.check(top + 1n));
    assert.ok(!w.check(-1n));
  });

  it('a big jump forgets everything below the new window', () => {
    const w = new PacketWindow(64);
    for (let i = 0n; i < 32n; i++) assert.ok(w.accept(i));
    assert.ok(w.accept(1000n));
    assert.ok(w.accept(1000n - 31n));
    assert.ok(!w.accept(31n));
  });

  it('property: agrees with a set-based model of the window', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 400 }), { maxLength: 400 }),
        fc.constantFrom(64, 128, 256),
        (ids, bits) => {
          const w = new PacketWindow(bits);
          const seen = new Set<number>();
          let last = -1;
          for (const id of ids) {
            const expect = id > last || (last - id < bits - 32 && !seen.has(id));
            assert.equal(w.accept(BigInt(id)), expect, `id ${id} last ${last}`);
            if (expect) {
              seen.add(id);
              last = Math.max(last, id);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
