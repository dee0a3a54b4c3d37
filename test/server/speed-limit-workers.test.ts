/**
 * Speed limits across data-plane workers (src/server/workers/shared-buckets.ts): two connections
 * of one key that two worker threads carry share the key's rate (their sum takes at least
 * (size - burst) / rate, where each alone at the rate would take half), and a limit removed on
 * the plane (setKeys: a delta with the same id and new limits) reaches the workers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startWorkerPlane, type WorkerPlane } from '../../src/server/index.js';
import { keyDelta } from '../../src/server/keys.js';
import { burstBytes } from '../../src/server/speed-limits.js';
import { reusePortAvailable } from '../../src/server/workers/reuseport.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { silentLogger } from '../../src/shared/logger.js';
import { startSource, u64, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { openTestTunnel, type TestTunnel } from '../helpers/test-client.js';
import { waitFor } from '../helpers/wait.js';

const RATE = 512 * 1024;
const HALF = 768 * 1024;
const BOUND_MS = ((2 * HALF - burstBytes(RATE)) / RATE) * 1000;
const NEED = 'the native addon with SO_REUSEPORT sockets (node scripts/build-native.mjs)';

describe('speed limits across workers', { skip: skipUnless(reusePortAvailable(), NEED) }, () => {
  const k: RuntimeKey = {
    id: `speed-w-${randomBytes(4).toString('hex')}`,
    method: 'chacha20-ietf-poly1305',
    secret: `pw-${randomBytes(6).toString('hex')}`,
    speedLimit: RATE,
  };
  let plane: WorkerPlane;
  let source: TestServer;
  before(async () => {
    source = await startSource({ hash: false });
    const loopback = { port: 0, host: '127.0.0.1', allowPrivateDestinations: true };
    plane = await startWorkerPlane({
      ...loopback,
      workers: 2,
      keys: [k],
      logger: silentLogger,
      reportMs: 50,
    });
  });
  after(async () => {
    await Promise.all([plane.close(), source.close()]);
  });

  const open = (): Promise<TestTunnel> =>
    openTestTunnel({
      port: plane.address.port,
      method: k.method,
      password: k.secret,
      target: { host: '127.0.0.1', port: source.port },
    });

  /** Open tunnels (the request without data) until each worker has one; the tunnel per worker. */
  async function onePerWorker(): Promise<TestTunnel[]> {
    const tunnels: TestTunnel[] = [];
    const mine: (TestTunnel | undefined)[] = [undefined, undefined];
    try {
      for (let i = 0; i < 30 && (!mine[0] || !mine[1]); i++) {
        const before = plane.workerStats().map((w) => w.authenticated);
        const t = await open();
        tunnels.push(t);
        const w = await waitFor(
          () => {
            const now = plane.workerStats().map((s) => s.authenticated);
            const j = now.findIndex((n, x) => n > before[x]!);
            return j >= 0 ? { j } : undefined;
          },
          { timeoutMs: 20_000, message: 'the connection authenticated in a worker' },
        );
        mine[w.j] ??= t;
      }
      assert.ok(mine[0] && mine[1], 'a connection on each worker');
      for (const t of tunnels) if (t !== mine[0] && t !== mine[1]) t.destroy();
      return [mine[0], mine[1]];
    } catch (err) {
      for (const t of tunnels) t.destroy();
      throw err;
    }
  }

  /** Both tunnels download HALF at once: the ms until both have it all. */
  async function both(tunnels: TestTunnel[]): Promise<number> {
    const t0 = Date.now();
    for (const t of tunnels) t.send(u64(HALF));
    await Promise.all(tunnels.map((t) => t.read(HALF, 20_000)));
    return Date.now() - t0;
  }

  it('two connections on two workers share the rate; a limit removed on the plane reaches both', async () => {
    let tunnels = await onePerWorker();
    try {
      const ms = await both(tunnels);
      assert.ok(ms >= BOUND_MS, `both took ${ms} ms; their sum at the rate needs ${BOUND_MS}`);
      assert.ok(ms < BOUND_MS + 6000, `both took ${ms} ms`);
    } finally {
      for (const t of tunnels) t.destroy();
    }
    // What setKeys sends (keyDelta: a changed limit is a change), awaited in every worker.
    const delta = keyDelta(new Map([[k.id, k]]), [{ id: k.id, method: k.method, secret: k.secret }]);
    assert.equal(delta.upsert.length, 1, 'the limit change is in the delta');
    await plane.applyKeyDelta(delta);
    tunnels = await onePerWorker();
    try {
      const ms = await both(tunnels);
      assert.ok(ms < BOUND_MS / 2, `without the limit both took ${ms} ms`);
    } finally {
      for (const t of tunnels) t.destroy();
    }
  });
});
