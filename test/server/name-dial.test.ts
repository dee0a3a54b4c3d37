/**
 * Destinations given as a name (names.ts): the server keeps a name's addresses a short while and
 * dials a natively accepted connection's name in the addon over those addresses, as an IP's.
 * Real sockets on loopback, a real server; the lookup is injected where the answer matters (a
 * failure, a private address, two addresses), the system's otherwise ("localhost"). Each case
 * runs with the cache and addon dial on, and the statuses, bytes and fallback with them off
 * (nameCache: false, the path of LADDER_NAME_DIAL=0) must be the same.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DialError } from '../../src/server/destination.js';
import { dialName, NameCache, nameCacheMsFromEnv, nameDialFromEnv } from '../../src/server/names.js';
import { systemClock } from '../../src/shared/clock.js';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { nativeAcceptLive } from '../../src/transport/native-stream.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { exchange, later, request, startServer, statuses } from '../helpers/name-server.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { probeOnce } from '../probing/prober.js';
import { leanPathServed } from '../../src/server/lean-path.js';

describe('names: the cache and the dial in the addon', () => {
  let echo: TestServer;
  before(async () => {
    echo = await startEcho();
  });
  after(async () => {
    await echo.close();
  });

  it('LADDER_NAME_DIAL: on by default, 0 turns it off; LADDER_DNS_CACHE_MS is whole ms', () => {
    assert.equal(nameDialFromEnv({}), true);
    assert.equal(nameDialFromEnv({ LADDER_NAME_DIAL: '0' }), false);
    assert.equal(nameCacheMsFromEnv({}), 10_000);
    assert.equal(nameCacheMsFromEnv({ LADDER_DNS_CACHE_MS: '0' }), 0);
    assert.equal(nameCacheMsFromEnv({ LADDER_DNS_CACHE_MS: '2500' }), 2500);
    assert.throws(() => nameCacheMsFromEnv({ LADDER_DNS_CACHE_MS: '5s' }), /LADDER_DNS_CACHE_MS: .*"5s"/);
  });

  for (const on of [true, false]) {
    const which = on ? 'cache on' : 'cache off (control)';

    it(`${which}: "localhost" (the system's resolver) reaches the loopback echo`, async () => {
      const r = await startServer(on);
      try {
        const data = Buffer.from('through a name');
        for (let i = 0; i < 3; i++) assert.deepEqual(await exchange(r, 'localhost', echo.port, data), data);
        await waitFor(() => r.closed.length === 3, { timeoutMs: 3000 });
        assert.deepEqual(statuses(r), Array(3).fill(['OK', undefined]));
        await sleep(20);
        assert.equal(nativeAcceptLive(), 0);
        assert.equal(nativeRelay()?.relayLive() ?? 0, 0);
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: a name that does not resolve is ERR_RESOLVE with a FIN (kept a moment with the cache)`, async () => {
      const r = await startServer(on, { lookup: () => [] });
      try {
        for (let i = 0; i < 2; i++)
          assert.equal((await exchange(r, 'nx.test', echo.port, Buffer.from('x'))).length, 0);
        await waitFor(() => r.closed.length === 2, { timeoutMs: 3000 });
        assert.deepEqual(statuses(r), Array(2).fill(['ERR_RESOLVE', undefined]));
        assert.deepEqual(r.lookups, on ? ['nx.test'] : ['nx.test', 'nx.test'], 'a failure is kept a moment');
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: a name of a private address is refused without allowPrivate, cached or not`, async () => {
      const r = await startServer(on, { lookup: () => ['127.0.0.1'], allowPrivate: false });
      try {
        for (let i = 0; i < 2; i++)
          assert.equal((await exchange(r, 'inside.test', echo.port, Buffer.from('x'))).length, 0);
        await waitFor(() => r.closed.length === 2, { timeoutMs: 3000 });
        assert.deepEqual(statuses(r), Array(2).fill(['ERR_FORBIDDEN', undefined]));
        assert.equal(r.lookups.length, on ? 1 : 2, on ? 'the second answer came from the cache' : 'no cache');
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: a refused first address falls back to the second`, async () => {
      // Nothing listens on 127.0.0.2 at the echo's port: refused; 127.0.0.1 answers.
      const r = await startServer(on, { lookup: () => ['127.0.0.2', '127.0.0.1'] });
      try {
        const data = Buffer.from('second address');
        for (let i = 0; i < 2; i++) assert.deepEqual(await exchange(r, 'two.test', echo.port, data), data);
        const dead = await startEcho(); // then both refuse: the last error is the status
        await dead.close();
        assert.equal((await exchange(r, 'two.test', dead.port, data)).length, 0);
        await waitFor(() => r.closed.length === 3, { timeoutMs: 3000 });
        assert.deepEqual(statuses(r), [
          ['OK', undefined],
          ['OK', undefined],
          ['ERR_CONNECT', 'ECONNREFUSED'],
        ]);
        assert.equal(r.lookups.length, on ? 1 : 3);
      } finally {
        await r.server.close();
      }
    });
  }

  it('a name pending its lookup when its key is closed ends ERR_CLOSED at once, lean as not; the late answer dials nothing', async () => {
    async function closedWhileLooking(leanPath: boolean): Promise<string> {
      const slow = later<string[]>();
      const r = await startServer(true, { lookup: () => slow.p, leanPath });
      const before = leanPathServed();
      try {
        const data = Buffer.from('x');
        const p = probeOnce(
          r.port,
          { label: 'pending', payload: request('slow.test', echo.port, data) },
          {
            halfClose: false,
            giveUpMs: 2000,
          },
        );
        await waitFor(() => r.lookups.length === 1, { timeoutMs: 2000 });
        const closedNow = r.server.closeKeyConnections('k1');
        const res = await p;
        await waitFor(() => r.closed.length === 1, { timeoutMs: 2000 });
        slow.resolve(['127.0.0.1']);
        await sleep(50);
        const live = [nativeAcceptLive(), nativeRelay()?.relayLive() ?? 0, r.server.connectionCount];
        const e = r.closed[0]!;
        const lean = leanPathServed() - before;
        return `${closedNow} ${e.status} ${e.keyId} ${res.bytesBack} ${res.reaction} ${res.ms < 1000} ${live} lean ${lean}`;
      } finally {
        slow.resolve([]);
        await r.server.close();
      }
    }
    const on = await closedWhileLooking(true);
    assert.equal(on, '1 ERR_CLOSED k1 0 FIN true 0,0,0 lean 1');
    assert.equal(await closedWhileLooking(false), on.replace('lean 1', 'lean 0'));
  });

  it('an answer expires after ttlMs: the name is looked up again', async () => {
    const r = await startServer(true, { lookup: () => ['127.0.0.1'], ttlMs: 300 });
    try {
      const data = Buffer.from('ttl');
      assert.deepEqual(await exchange(r, 'ttl.test', echo.port, data), data);
      assert.deepEqual(await exchange(r, 'ttl.test', echo.port, data), data);
      assert.equal(r.lookups.length, 1, 'kept');
      await sleep(350);
      assert.deepEqual(await exchange(r, 'ttl.test', echo.port, data), data);
      assert.equal(r.lookups.length, 2, 'expired, asked again');
    } finally {
      await r.server.close();
    }
  });
});

describe('NameCache and dialName (no sockets)', () => {
  it('bounded: the oldest answer goes first; concurrent lookups of a name share one', async () => {
    let calls = 0;
    const cache = new NameCache({
      clock: systemClock,
      max: 2,
      lookup: async (h) => (calls++, [{ address: h === 'a' ? '192.0.2.1' : '192.0.2.2', family: 4 }]),
    });
    const [x, y] = await Promise.all([cache.resolve('a'), cache.resolve('a')]);
    assert.deepEqual([x, y, calls], [['192.0.2.1'], ['192.0.2.1'], 1]);
    await cache.resolve('b');
    await cache.resolve('c');
    assert.equal(cache.size, 2);
    assert.equal(cache.get('a'), undefined);
    assert.deepEqual(cache.get('c'), ['192.0.2.2']);
  });

  it('dialName: passes over an address refused at once, retries the next on a later failure, then fails', () => {
    const filled = new NameCache({
      clock: systemClock,
      lookup: async () =>
        ['198.51.100.1', '198.51.100.2', '198.51.100.3'].map((address) => ({ address, family: 4 })),
    });
    return filled.resolve('n.test').then(() => {
      const tried: string[] = [];
      const started: object[] = [];
      const failed: unknown[] = [];
      const fails: unknown[] = []; // `failed` is narrowed to never[] by the deepEqual below
      const refused = new DialError('ERR_CONNECT', 'connect failed: ECONNREFUSED', 'ECONNREFUSED');
      const d = dialName(
        filled,
        { allowPrivateDestinations: false, connectMs: 5000, clock: systemClock },
        { type: 'domain', host: 'n.test', port: 80 },
        (ip) => {
          tried.push(ip);
          if (ip === '198.51.100.1') throw refused;
          return { ip };
        },
        { live: () => true, started: (relay) => started.push(relay), failed: (e) => failed.push(e) },
      );
      assert.deepEqual(tried, ['198.51.100.1', '198.51.100.2'], 'synchronous: the name was cached');
      assert.equal(d.retry(refused), undefined);
      assert.deepEqual(tried, ['198.51.100.1', '198.51.100.2', '198.51.100.3']);
      assert.equal(d.retry(refused), refused, 'none left: the owner fails with this error');
      assert.deepEqual(started, [{ ip: '198.51.100.2' }, { ip: '198.51.100.3' }]);
      assert.deepEqual(failed, []);

      // The last error an address gave is the one to fail with (dialWith's): .2 times out later,
      // .3 is refused at once by then.
      const late = new DialError('ERR_CONNECT', 'connect failed: ETIMEDOUT', 'ETIMEDOUT');
      const e = dialName(
        filled,
        { allowPrivateDestinations: false, connectMs: 5000, clock: systemClock },
        { type: 'domain', host: 'n.test', port: 80 },
        (ip) => {
          if (ip !== '198.51.100.2') throw refused;
          return { ip };
        },
        { live: () => true, started: () => {}, failed: (err) => fails.push(err) },
      );
      assert.equal(e.retry(late), refused);
      // Every address private: ERR_FORBIDDEN, told to the owner at once.
      const inside = new NameCache({
        clock: systemClock,
        lookup: async () => [{ address: '10.1.2.3', family: 4 }],
      });
      return inside.resolve('lan.test').then(() => {
        dialName(
          inside,
          { allowPrivateDestinations: false, connectMs: 5000, clock: systemClock },
          { type: 'domain', host: 'lan.test', port: 80 },
          () => assert.fail('no address may be dialled'),
          { live: () => true, started: () => {}, failed: (err) => fails.push(err) },
        );
        assert.deepEqual(
          fails.map((x) => (x as DialError).status),
          ['ERR_FORBIDDEN'],
        );
      });
    });
  });
});
