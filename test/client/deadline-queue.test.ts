/**
 * DeadlineQueue (src/client/deadline-queue.ts): answer-watch's no-answer waits on one timer.
 * Each entry fires once, `ms` after it was added, in order; cancelled ones never; the queue
 * holds one timer at most, and drops what it no longer needs.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DeadlineQueue } from '../../src/client/deadline-queue.js';
import { ManualClock, type Clock, type Timer } from '../../src/shared/clock.js';

/** A ManualClock that counts the timers armed and pending. */
function countingClock(): {
  clock: Clock & { advance(ms: number): void };
  armed: () => number;
  pending: () => number;
} {
  const m = new ManualClock();
  let armed = 0;
  let pending = 0;
  const clock = {
    now: () => m.now(),
    setTimeout: (fn: () => void, ms: number): Timer => {
      armed++;
      pending++;
      return m.setTimeout(() => {
        pending--;
        fn();
      }, ms);
    },
    clearTimeout: (t: Timer) => m.clearTimeout(t),
    advance: (ms: number) => m.advance(ms),
  };
  return { clock, armed: () => armed, pending: () => pending };
}

describe('DeadlineQueue', () => {
  it('fires each entry once, ms after it was added, in order; cancelled ones never', () => {
    const { clock, pending } = countingClock();
    const q = new DeadlineQueue(clock, 1000);
    const fired: string[] = [];
    q.add(() => fired.push('a'));
    clock.advance(300);
    const b = q.add(() => fired.push('b'));
    clock.advance(300);
    q.add(() => fired.push('c'));
    b.cancel();
    b.cancel(); // idempotent
    assert.equal(q.live, 2);
    assert.equal(pending(), 1, 'one timer for all');
    clock.advance(399);
    assert.deepEqual(fired, []);
    clock.advance(1);
    assert.deepEqual(fired, ['a']);
    clock.advance(599);
    assert.deepEqual(fired, ['a']);
    clock.advance(1);
    assert.deepEqual(fired, ['a', 'c']);
    assert.equal(q.live, 0);
    assert.equal(pending(), 0, 'no timer left when nothing is waiting');
  });

  it('arms no timer for entries cancelled before they are due, beyond the first', () => {
    const { clock, armed } = countingClock();
    const q = new DeadlineQueue(clock, 10_000);
    for (let i = 0; i < 5000; i++) {
      q.add(() => assert.fail('cancelled')).cancel();
      clock.advance(1);
    }
    clock.advance(20_000);
    assert.ok(armed() <= 2, `timers armed: ${armed()}`);
    assert.equal(q.live, 0);
  });

  it('an entry added or throwing inside a callback still fires later', () => {
    const { clock } = countingClock();
    const q = new DeadlineQueue(clock, 100);
    const fired: string[] = [];
    q.add(() => {
      fired.push('a');
      q.add(() => fired.push('inner'));
    });
    q.add(() => {
      fired.push('b');
      throw new Error('boom');
    });
    q.add(() => fired.push('c'));
    assert.throws(() => clock.advance(100), /boom/);
    assert.deepEqual(fired, ['a', 'b']);
    clock.advance(0);
    assert.deepEqual(fired, ['a', 'b', 'c']);
    clock.advance(100);
    assert.deepEqual(fired, ['a', 'b', 'c', 'inner']);
  });

  it('a live entry behind many cancelled ones fires on time', () => {
    const { clock } = countingClock();
    const q = new DeadlineQueue(clock, 1000);
    let fired = 0;
    const keep = q.add(() => fired++);
    for (let i = 0; i < 3000; i++) q.add(() => assert.fail('cancelled')).cancel();
    const late = q.add(() => fired++);
    clock.advance(1000);
    assert.equal(fired, 2);
    void keep;
    void late;
  });
});
