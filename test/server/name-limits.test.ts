/**
 * The name path's limits (names.ts, name-lookups.ts, destination.ts attemptDeadline): an address
 * that never answers no longer spends the whole connect budget; a lookup has a time limit of its
 * own that reaches every waiter; a failure is kept a moment; lookups run through a gate on
 * libuv's thread pool with a share per key, so one key asking for names that never resolve
 * leaves a thread to the others. Real servers and sockets on loopback; the resolver is injected
 * (a fake thread pool of libuv's size stands for getaddrinfo's threads).
 */
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { attemptDeadline, type DialError } from '../../src/server/destination.js';
import {
  clearLookupRow,
  lookupGateBuffer,
  lookupRowsFor,
  processLookupGate,
} from '../../src/server/name-cache-env.js';
import { LookupGate, lookupSlots } from '../../src/server/name-lookups.js';
import { NameCache } from '../../src/server/names.js';
import { ManualClock, systemClock } from '../../src/shared/clock.js';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { exchange, later, startServer, statuses } from '../helpers/name-server.js';
import { blackholePort, startEcho, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

const fns = nativeRelay();
const hasListen =
  typeof (fns as { tcpListenReusePort?: unknown } | undefined)?.tcpListenReusePort === 'function';

/** libuv's pool as getaddrinfo sees it: `size` threads, a call waits for one. */
function threadPool(size: number): <T>(work: () => Promise<T>) => Promise<T> {
  let busy = 0;
  const waiting: (() => void)[] = [];
  return async (work) => {
    if (busy >= size) await new Promise<void>((r) => waiting.push(r));
    busy++;
    try {
      return await work();
    } finally {
      busy--;
      waiting.shift()?.();
    }
  };
}

describe('names: limits on the dial and the lookups', () => {
  let echo: TestServer;
  before(async () => {
    echo = await startEcho();
  });
  after(async () => {
    await echo.close();
  });

  it('attemptDeadline: equal shares, at least 2 s, the last address gets what is left', () => {
    assert.equal(attemptDeadline(0, 10_000, 1), 10_000);
    assert.equal(attemptDeadline(0, 10_000, 2), 5000);
    assert.equal(attemptDeadline(0, 10_000, 8), 2000);
    assert.equal(attemptDeadline(9000, 10_000, 3), 10_000, 'never past the deadline');
  });

  for (const on of [true, false]) {
    const which = on ? 'cache on' : 'cache off';
    it(
      `${which}: a first address that never answers leaves the second its share of the budget`,
      { skip: skipUnless(hasListen, 'the native addon (a listener whose accept queue is full)') },
      async () => {
        const hole = await blackholePort(fns!); // 127.0.0.1:P drops SYNs
        const second = net.createServer((s) => s.pipe(s)); // 127.0.0.2:P answers
        await new Promise<void>((res) => second.listen(hole.port, '127.0.0.2', res));
        const r = await startServer(on, { lookup: () => ['127.0.0.1', '127.0.0.2'], connectMs: 4500 });
        try {
          const data = Buffer.from('past a dead address');
          const t0 = Date.now();
          assert.deepEqual(await exchange(r, 'hole.test', hole.port, data), data);
          const took = Date.now() - t0;
          assert.ok(took >= 2000 && took < 4500, `the first address had its share (2.25 s), took ${took} ms`);
          await waitFor(() => r.closed.length === 1, { timeoutMs: 3000 });
          assert.deepEqual(statuses(r), [['OK', undefined]]);
        } finally {
          await r.server.close();
          second.close();
          hole.close();
        }
      },
    );
  }

  it('a lookup that does not answer fails every waiter at lookupMs; its late answer is kept', async () => {
    const slow = later<string[]>();
    const safety = setTimeout(() => slow.resolve(['127.0.0.1']), 4000); // the code without a limit
    const r = await startServer(true, { lookup: () => slow.p, cache: { lookupMs: 300 } });
    try {
      const t0 = Date.now();
      const replies = await Promise.all(
        [1, 2].map(() => exchange(r, 'slow.test', echo.port, Buffer.from('x'))),
      );
      const took = Date.now() - t0;
      assert.deepEqual(
        replies.map((b) => b.length),
        [0, 0],
      );
      assert.ok(took < 2000, `both waiters failed at the lookup's limit, not later (${took} ms)`);
      await waitFor(() => r.closed.length === 2, { timeoutMs: 3000 });
      assert.deepEqual(statuses(r), Array(2).fill(['ERR_RESOLVE', undefined]));
      assert.equal(r.lookups.length, 1, 'one lookup shared by both');
      slow.resolve(['127.0.0.1']);
      await new Promise((res) => setImmediate(res)); // the answer is kept
      const data = Buffer.from('late answer');
      assert.deepEqual(await exchange(r, 'slow.test', echo.port, data), data);
      assert.equal(r.lookups.length, 1, 'the late answer was kept');
    } finally {
      clearTimeout(safety);
      await r.server.close();
    }
  });

  it("one key's names that never resolve leave a lookup thread to another key", async () => {
    const hung = later<string[]>();
    const safety = setTimeout(() => hung.resolve([]), 4000); // the code without a gate
    const pool = threadPool(4); // libuv's default
    const r = await startServer(true, {
      lookup: (host) => pool(() => (host.startsWith('dead') ? hung.p : Promise.resolve(['127.0.0.1']))),
      cache: { lookupMs: 6000 },
    });
    const dead = [...Array(8).keys()].map((i) =>
      exchange(r, `dead${i}.test`, echo.port, Buffer.from('x'), 0),
    );
    try {
      await waitFor(() => r.lookups.length >= 2, { timeoutMs: 3000 });
      const t0 = Date.now();
      const data = Buffer.from('another key');
      assert.deepEqual(await exchange(r, 'alive.test', echo.port, data, 1), data);
      const took = Date.now() - t0;
      assert.ok(took < 2000, `the second key's name resolved at once (${took} ms)`);
      assert.equal(
        r.lookups.filter((h) => h.startsWith('dead')).length,
        lookupSlots() - 1,
        'the first key ran its share of the slots, the rest wait',
      );
    } finally {
      clearTimeout(safety);
      hung.resolve([]);
      await Promise.all(dead);
      await r.server.close();
    }
  });
});

describe('NameCache queues and LookupGate (no sockets)', () => {
  it('a failure is kept failMs, then asked again; every waiter of a shared lookup gets it', async () => {
    const clock = new ManualClock();
    let calls = 0;
    const cache = new NameCache({ clock, ttlMs: 10_000, failMs: 1000, lookup: async () => (calls++, []) });
    const all = await Promise.allSettled([cache.resolve('nx'), cache.resolve('nx'), cache.resolve('nx')]);
    assert.deepEqual(
      all.map((x) => (x.status === 'rejected' ? (x.reason as DialError).status : 'ok')),
      ['ERR_RESOLVE', 'ERR_RESOLVE', 'ERR_RESOLVE'],
    );
    await assert.rejects(cache.resolve('nx'), { status: 'ERR_RESOLVE' });
    assert.equal(calls, 1, 'one lookup for the three, the fourth from the kept failure');
    clock.advance(1000);
    await assert.rejects(cache.resolve('nx'), { status: 'ERR_RESOLVE' });
    assert.equal(calls, 2, 'asked again once the failure expired');
  });

  it("keys are served in turn; a key's queue is bounded", async () => {
    const clock = new ManualClock();
    const started: string[] = [];
    const answers = new Map<string, (v: { address: string; family: number }[]) => void>();
    const cache = new NameCache({
      clock,
      gate: new LookupGate(lookupGateBuffer(), 0, 1),
      queuePerKey: 3,
      lookup: (h) => new Promise((res) => (started.push(h), answers.set(h, res))),
    });
    const a = ['a1', 'a2', 'a3', 'a4'].map((h) => cache.resolve(h, 'A'));
    const b = cache.resolve('b1', 'B');
    await assert.rejects(cache.resolve('a5', 'A'), /too many name lookups waiting/);
    for (let i = 0; i < 4; i++) {
      await waitFor(() => started.length === i + 1);
      answers.get(started[i]!)!([{ address: '192.0.2.1', family: 4 }]);
    }
    await waitFor(() => started.length === 5);
    answers.get(started[4]!)!([{ address: '192.0.2.1', family: 4 }]);
    await Promise.all([...a, b]);
    assert.deepEqual(started, ['a1', 'a2', 'b1', 'a3', 'a4'], 'B did not wait behind all of A');
  });

  it("every name cache of a thread counts in the process's one gate (in-process planes, the web front's server)", async () => {
    let running = 0;
    let most = 0;
    const hung: (() => void)[] = [];
    const lookup = (): Promise<never> =>
      new Promise((_res, rej) => {
        most = Math.max(most, ++running);
        hung.push(() => (running--, rej(Object.assign(new Error('no'), { code: 'ENOTFOUND' }))));
      });
    // Two caches made as two servers of one thread make theirs (no gate given), three keys each;
    // the system clock: a cache whose gate was full looks again on a timer.
    const caches = [0, 1].map(() => new NameCache({ clock: systemClock, lookup, lookupMs: 0 }));
    const asked = caches.flatMap((c, i) =>
      ['A', 'B', 'C'].map((k) => c.resolve(`${k}.c${i}.test`, `${k}${i}`).catch(() => undefined)),
    );
    await waitFor(() => running >= lookupSlots());
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(most, lookupSlots(), "the thread's lookups at once: the pool less one, not that per cache");
    let settled = false;
    void Promise.all(asked).then(() => (settled = true));
    await waitFor(() => (hung.splice(0).forEach((h) => h()), settled)); // the rest run, and end
  });

  it("a pool's workers get rows in the process's memory, beside the main thread's", () => {
    const rows = lookupRowsFor(1);
    assert.equal(rows.memory, processLookupGate());
    assert.ok(rows.first >= 1, 'row 0 is the main thread');
    const worker = new LookupGate(rows.memory, rows.first, 3);
    const main = new LookupGate(); // a name cache of the main thread's
    assert.equal(worker.take('A'), 0);
    assert.equal(main.running, 1, "the main thread's gate counts the worker's lookup");
    worker.give('A');
    assert.notEqual(lookupRowsFor(100_000).memory, processLookupGate(), 'too many: a memory of their own');
  });

  it('LookupGate: one count for every worker of the process, a share per key; a dead row is cleared', () => {
    const mem = lookupGateBuffer(2);
    const [w0, w1] = [new LookupGate(mem, 0, 3), new LookupGate(mem, 1, 3)];
    assert.equal(w0.take('A'), 0);
    assert.equal(w1.take('A'), 0);
    assert.equal(w1.take('A'), 1, 'the key has its two of three in the process');
    assert.equal(w1.take('B'), 0);
    assert.equal(w0.take('C'), 2, 'all three busy');
    clearLookupRow(mem, 1); // worker 1 died and starts again
    assert.equal(w0.running, 1);
    assert.equal(w0.take('B'), 0);
    w0.give('A');
    w0.give('B');
    assert.equal(w0.running, 0);
  });
});
