/**
 * The multi-worker data plane (src/server/workers/): N worker threads on SO_REUSEPORT sockets
 * sharing one replay filter. A replay that the kernel hands to another worker than the original
 * connection's is refused the same way (no data, held until the idle timeout, then FIN); with
 * per-worker filters (the negative control) the same replay is answered. Keys changed on the plane
 * apply in every worker; usage is counted once.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { startDataPlane, startWorkerPlane, type WorkerPlane } from '../../src/server/index.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { silentLogger } from '../../src/shared/logger.js';
import { skipUnless } from '../helpers/prereq.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { waitFor } from '../helpers/wait.js';
import { runLadder } from '../helpers/ladder-run.js';
import { reusePortAvailable } from '../../src/server/workers/reuseport.js';
import { AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';

const METHOD = 'chacha20-ietf-poly1305';
const IDLE_MS = 1500;
const key = (id: string): RuntimeKey => ({
  id,
  method: METHOD,
  secret: `workers-${id}-${randomBytes(4).toString('hex')}`,
});

async function plane(keys: RuntimeKey[], extra: { shareReplay?: boolean } = {}): Promise<WorkerPlane> {
  return startWorkerPlane({
    workers: 2,
    keys,
    port: 0,
    host: '127.0.0.1',
    logger: silentLogger,
    allowPrivateDestinations: true,
    timeouts: { idleMs: IDLE_MS },
    reportMs: 50,
    usageFlushMs: 100,
    ...extra,
  });
}

/** Send `first` on a new connection; what came back and how it closed (bounded by giveUpMs). */
function replay(
  port: number,
  first: Buffer,
  giveUpMs = IDLE_MS + 3000,
): Promise<{ bytes: number; end: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let bytes = 0;
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const done = (end: string): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ bytes, end, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => done('timeout'), giveUpMs);
    s.on('connect', () => s.write(first));
    s.on('data', (d: Buffer) => (bytes += d.length));
    s.on('end', () => done('fin'));
    s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
  });
}

/**
 * Up to this for an answer: the plane starts its workers at the first connection (on demand),
 * which takes seconds on a loaded machine (5 s did not always do).
 */
const COLD_MS = 20_000;

/** One honest exchange; returns the first wire packet. */
async function honest(port: number, k: RuntimeKey, echo: TestServer): Promise<Buffer> {
  const t = await openTestTunnel({
    port,
    method: k.method,
    password: k.secret,
    target: { host: '127.0.0.1', port: echo.port },
    initial: Buffer.from('ping'),
  });
  const got = await t.read(4, COLD_MS);
  assert.equal(got.toString(), 'ping');
  t.destroy();
  return t.sentWire[0]!;
}

/** Which worker authenticated how many connections, and closed how many with `status`. */
function by(p: WorkerPlane, status?: string): number[] {
  return p.workerStats().map((w) => (status ? (w.closed[status] ?? 0) : w.authenticated));
}

const NEED = 'the native addon with SO_REUSEPORT sockets (node scripts/build-native.mjs)';

describe('multi-worker data plane', { skip: skipUnless(reusePortAvailable(), NEED) }, () => {
  test('a replay that reaches the other worker is refused like any replay: no data, FIN at the idle timeout', async () => {
    const echo = await startEcho();
    const k = key('a');
    const p = await plane([k]);
    try {
      assert.equal(p.workers, 2);
      const first = await honest(p.address.port, k, echo);
      const origin = await waitFor(() => {
        const a = by(p);
        const i = a.findIndex((n) => n === 1);
        return i >= 0 ? { i } : undefined;
      });
      const other = 1 - origin.i;
      // The kernel picks the worker by a hash of the 4-tuple: new source ports until one replay
      // lands on the other worker (bounded: 40 tries miss it with probability 2^-40).
      const refused = (): number => by(p, 'ERR_REPLAY_CLIENT').reduce((x, y) => x + y, 0);
      for (let n = 0; n < 40 && by(p, 'ERR_REPLAY_CLIENT')[other] === 0; n++) {
        const r = await replay(p.address.port, first, 300);
        assert.equal(r.bytes, 0, 'a replay gets no data');
        await waitFor(() => refused() > n || undefined, { message: `replay ${n + 1} reported` });
      }
      assert.ok(by(p, 'ERR_REPLAY_CLIENT')[other]! > 0, `no replay reached worker ${other}`);
      assert.deepEqual(by(p), origin.i === 0 ? [1, 0] : [0, 1], 'no replay authenticated anywhere');
      // The full reaction on a connection held to the end (whichever worker it reaches).
      const held = await replay(p.address.port, first);
      assert.equal(held.bytes, 0);
      assert.equal(held.end, 'fin');
      assert.ok(held.ms >= IDLE_MS - 50, `closed after ${held.ms} ms, before the idle timeout`);
    } finally {
      await p.close();
      await echo.close();
    }
  });

  test('negative control: with a filter per worker, the same replay is answered on the other worker', async () => {
    const echo = await startEcho();
    const k = key('b');
    const p = await plane([k], { shareReplay: false });
    try {
      const first = await honest(p.address.port, k, echo);
      let answered = 0;
      for (let n = 0; n < 40 && answered === 0; n++) {
        const r = await replay(p.address.port, first, 300);
        answered += r.bytes > 0 ? 1 : 0;
      }
      assert.ok(answered > 0, 'a replay on the other worker was answered (the filters are not shared)');
    } finally {
      await p.close();
      await echo.close();
    }
  });

  test('keys added, changed and removed on the plane apply in every worker', async () => {
    const echo = await startEcho();
    const a = key('a');
    const p = await plane([a]);
    try {
      const b = key('b');
      await p.applyKeyDelta({ upsert: [b], remove: [] });
      // The kernel picks the worker by a hash of the 4-tuple: connections until both workers
      // served one (bounded: 60 miss one worker with probability 2^-59; the fixed 16 this used
      // missed one with 2^-15). The counts arrive every reportMs: a late one costs a connection.
      for (let i = 0; i < 60 && !by(p).every((n) => n > 0); i++) await honest(p.address.port, b, echo);
      await waitFor(() => by(p).every((n) => n > 0) || undefined, {
        message: 'both workers authenticated key b',
      });
      await p.applyKeyDelta({ upsert: [], remove: ['b'] });
      const before = by(p, 'ERR_CIPHER');
      const refusedByBoth = (): boolean => by(p, 'ERR_CIPHER').every((n, i) => n > before[i]!);
      for (let i = 0; i < 60 && !refusedByBoth(); i++) {
        const r = await replay(p.address.port, freshFirst(b, echo), 300);
        assert.equal(r.bytes, 0, 'a removed key is refused');
      }
      await waitFor(() => refusedByBoth() || undefined, {
        message: 'both workers refused the removed key',
      });
      assert.deepEqual(
        p.keys.map((k) => k.id),
        ['a'],
      );
    } finally {
      await p.close();
      await echo.close();
    }
  });

  test('usage is counted once: the same traffic gives the same totals as one in-process server', async () => {
    const echo = await startEcho();
    const k = key('u');
    const totals = async (
      start: (sink: {
        addBytes: (id: string, up: number, down: number) => void;
      }) => Promise<{ port: number; close: () => Promise<void>; done?: (n: number) => boolean }>,
      more: (i: number) => boolean,
    ): Promise<{ up: number; down: number; n: number }> => {
      const sum = { up: 0, down: 0, n: 0 };
      const s = await start({ addBytes: (_id, up, down) => ((sum.up += up), (sum.down += down)) });
      for (let i = 0; more(i); i++, sum.n++) {
        const t = await openTestTunnel({
          port: s.port,
          method: k.method,
          password: k.secret,
          target: { host: '127.0.0.1', port: echo.port },
          initial: Buffer.alloc(1000, i),
        });
        await t.read(1000, COLD_MS);
        t.end();
        await t.closed;
      }
      await waitFor(() => s.done?.(sum.n) ?? true);
      await s.close();
      return sum;
    };
    try {
      let wp: WorkerPlane | undefined;
      const multi = await totals(
        async (usage) => {
          wp = await startWorkerPlane({
            workers: 2,
            keys: [k],
            port: 0,
            host: '127.0.0.1',
            logger: silentLogger,
            allowPrivateDestinations: true,
            usage,
            reportMs: 50,
          });
          const p = wp;
          return {
            port: p.address.port,
            close: () => p.close(),
            done: (n) => by(p).reduce((a, b) => a + b, 0) === n,
          };
        },
        // The kernel picks the worker by a hash of the 4-tuple: at least 12 connections, and more
        // until both workers have carried one (bounded: 60 miss one worker with probability 2^-59).
        (i) => i < 12 || (i < 60 && !by(wp!).every((n) => n > 0)),
      );
      assert.ok(
        by(wp!).every((n) => n > 0),
        `both workers carried traffic: ${by(wp!).join('/')}`,
      );
      const single = await totals(
        async (usage) => {
          const d = await startDataPlane({
            keys: [k],
            port: 0,
            host: '127.0.0.1',
            usage,
            allowPrivateDestinations: true,
          });
          return { port: d.address.port, close: () => d.close() };
        },
        (i) => i < multi.n,
      );
      assert.ok(single.up > 12_000 && single.down > 12_000, JSON.stringify(single));
      assert.deepEqual(multi, single);
    } finally {
      await echo.close();
    }
  });

  test('a port another server already listens on is refused (SO_REUSEPORT must not share it between servers)', async () => {
    const k = key('port');
    const first = await plane([k]);
    const port = first.address.port;
    try {
      // Another Ladder server, as a process, on the same port: one line, exit 2, nothing shared.
      const r = await runLadder([
        'server',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--password',
        'x',
        '--workers',
        '2',
      ]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(
        r.stderr.trim(),
        `ladder: cannot listen on 127.0.0.1:${port}: EADDRINUSE (another process listens there)`,
      );
      // In this process too (a worker plane and an in-process data plane).
      await assert.rejects(
        startWorkerPlane({ workers: 2, keys: [k], port, host: '127.0.0.1', logger: silentLogger }),
        { code: 'EADDRINUSE' },
      );
      // Control: the port is still the first server's, and it still serves its key.
      const echo = await startEcho();
      try {
        await honest(port, k, echo);
      } finally {
        await echo.close();
      }
    } finally {
      await first.close();
    }
  });
});

/** A first packet of a new connection of key `k` that was never sent (so not a replay). */
function freshFirst(k: RuntimeKey, echo: TestServer): Buffer {
  const m = getAeadMethod(k.method);
  const enc = new AeadEncoder(m, evpBytesToKey(k.secret, m.keySize));
  return enc.encode(Buffer.from([1, 127, 0, 0, 1, echo.port >> 8, echo.port & 0xff, 0x70]));
}
