/**
 * LADDER_TIMERS_ON_DEMAND (on by default): a data-plane worker's report timer is armed by the
 * first event after a report, and a server's usage flush stops while nothing is open and nothing
 * is pending, starting again at the next connection or count. So an idle worker thread sleeps
 * instead of waking every reportMs and every usageFlushMs. What it keeps: usage reaches the sink
 * within a flush period while a connection is still open and is counted once, events still reach
 * the main thread. =0: the timers run all the time, as before.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { startWorkerPlane, type WorkerPlane } from '../../src/server/index.js';
import { UsageMeter } from '../../src/server/usage-meter.js';
import { ManualClock, type Timer } from '../../src/shared/clock.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { silentLogger } from '../../src/shared/logger.js';
import { reusePortAvailable } from '../../src/server/workers/reuseport.js';
import { skipUnless } from '../helpers/prereq.js';
import { startEcho } from '../helpers/net.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { waitFor } from '../helpers/wait.js';

const SWITCH = 'LADDER_TIMERS_ON_DEMAND';

/** Run `fn` with the switch set to `value` (undefined: unset), restored after. */
async function withSwitch<T>(value: string | undefined, fn: () => Promise<T> | T): Promise<T> {
  const before = process.env[SWITCH];
  if (value === undefined) delete process.env[SWITCH];
  else process.env[SWITCH] = value;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env[SWITCH];
    else process.env[SWITCH] = before;
  }
}

/** A ManualClock that knows how many of its timers are armed. */
class CountingClock extends ManualClock {
  armed = new Set<Timer>();
  override setTimeout(fn: () => void, ms: number): Timer {
    const t: Timer = super.setTimeout(() => {
      this.armed.delete(t);
      fn();
    }, ms);
    this.armed.add(t);
    return t;
  }
  override clearTimeout(t: Timer): void {
    this.armed.delete(t);
    super.clearTimeout(t);
  }
}

function meter(open: { n: number }): {
  m: UsageMeter;
  clock: CountingClock;
  got: [string, number, number][];
} {
  const clock = new CountingClock();
  const got: [string, number, number][] = [];
  const m = new UsageMeter({
    sink: { addBytes: (id, up, down) => void got.push([id, up, down]) },
    clock,
    log: silentLogger,
    flushMs: 400,
    busy: () => open.n > 0,
  });
  return { m, clock, got };
}

describe('usage flush on demand', () => {
  test('sleeps when nothing is open or pending, runs again at a count or a connection; counts once', async () => {
    await withSwitch(undefined, () => {
      const open = { n: 0 };
      const { m, clock, got } = meter(open);
      m.start();
      assert.equal(clock.armed.size, 1, 'armed at start');
      clock.advance(400);
      assert.equal(clock.armed.size, 0, 'idle: the flush did not re-arm');
      clock.advance(5000);
      m.add('k', 10, 20);
      assert.equal(clock.armed.size, 1, 'a count woke it');
      clock.advance(400);
      assert.deepEqual(got, [['k', 10, 20]]);
      assert.equal(clock.armed.size, 0, 'asleep again');
      open.n = 1;
      m.wake();
      m.wake();
      assert.equal(clock.armed.size, 1, 'a connection woke it, once');
      for (let i = 0; i < 5; i++) clock.advance(400);
      assert.equal(clock.armed.size, 1, 'runs while a connection is open');
      m.add('k', 1, 2);
      clock.advance(400);
      assert.deepEqual(got, [
        ['k', 10, 20],
        ['k', 1, 2],
      ]);
      open.n = 0;
      clock.advance(400);
      assert.equal(clock.armed.size, 0);
      m.stop();
      m.add('k', 5, 5);
      assert.equal(clock.armed.size, 0, 'stopped: a count does not start it');
    });
  });

  test(`${SWITCH}=0: the flush runs every period, idle or not`, async () => {
    await withSwitch('0', () => {
      const { m, clock } = meter({ n: 0 });
      m.start();
      for (let i = 0; i < 5; i++) {
        clock.advance(400);
        assert.equal(clock.armed.size, 1, `period ${i}: re-armed`);
      }
      m.stop();
      assert.equal(clock.armed.size, 0);
    });
  });
});

/** Voluntary context switches of thread `tid` of this process so far (it slept and was woken). */
function wakeUps(tid: number): number {
  const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
  return Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)![1]);
}

const NEED = 'the native addon with SO_REUSEPORT sockets (node scripts/build-native.mjs)';

describe('an idle data-plane worker', { skip: skipUnless(reusePortAvailable(), NEED) }, () => {
  const k: RuntimeKey = {
    id: 'idle',
    method: 'aes-256-gcm',
    secret: `timers-${randomBytes(4).toString('hex')}`,
  };

  /**
   * A 2-worker plane (reports and flushes every 100 ms); a held connection's bytes reach the
   * sink while it is open, then everything closes; the workers' wake-ups over 1 s of idleness.
   */
  async function idleWakeUps(
    value: string | undefined,
  ): Promise<{ wakes: number[]; up: number; down: number }> {
    const echo = await startEcho();
    const sum = { up: 0, down: 0 };
    let p: WorkerPlane | undefined;
    try {
      p = await withSwitch(value, async () => {
        // The workers read the switch at their start: at boot, now.
        const timers = { reportMs: 100, usageFlushMs: 100, startAtBoot: true };
        const usage = {
          addBytes: (_id: string, up: number, down: number) => ((sum.up += up), (sum.down += down)),
        };
        return startWorkerPlane({
          ...timers,
          usage,
          keys: [k],
          workers: 2,
          port: 0,
          host: '127.0.0.1',
          logger: silentLogger,
          allowPrivateDestinations: true,
        });
      });
      const plane = p;
      const t = await openTestTunnel({
        port: plane.address.port,
        method: k.method,
        password: k.secret,
        target: { host: '127.0.0.1', port: echo.port },
        initial: Buffer.alloc(1000, 1),
      });
      await t.read(1000, 20_000);
      // Counted while the connection is still open (the flush runs while one is).
      await waitFor(() => sum.down >= 1000, { timeoutMs: 10_000 });
      t.end();
      await t.closed;
      const total = (): number => plane.workerStats().reduce((a, w) => a + Object.keys(w.closed).length, 0);
      await waitFor(() => total() > 0, { timeoutMs: 10_000 });
      await new Promise((r) => setTimeout(r, 400)); // the last report and flush
      const tids = plane.workerStats().map((w) => w.tid!);
      const before = tids.map(wakeUps);
      await new Promise((r) => setTimeout(r, 1000));
      return { wakes: tids.map((tid, i) => wakeUps(tid) - before[i]!), ...sum };
    } finally {
      await p?.close();
      await echo.close();
    }
  }

  test('sleeps: no report or flush timer wakes it (=0: both do, every 100 ms)', async () => {
    const on = await idleWakeUps(undefined);
    const off = await idleWakeUps('0');
    for (const [name, r] of [
      ['on', on],
      ['off', off],
    ] as const) {
      assert.ok(r.up >= 1000 && r.down >= 1000, `${name}: usage counted (${r.up} up, ${r.down} down)`);
      assert.ok(r.up < 1200 && r.down < 1200, `${name}: usage counted once (${r.up} up, ${r.down} down)`);
    }
    assert.ok(
      on.wakes.every((n) => n <= 3),
      `on: each worker woke at most 3 times in 1 s idle: ${on.wakes.join(', ')}`,
    );
    assert.ok(
      off.wakes.every((n) => n >= 8),
      `off: each worker woke for its timers (>= 8 in 1 s): ${off.wakes.join(', ')}`,
    );
  });
});
