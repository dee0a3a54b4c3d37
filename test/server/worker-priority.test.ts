/**
 * Linux: the management thread lowers its priority (nice +5) only once the data-plane workers run,
 * and a worker restarted after a crash runs at the workers' priority, not the lowered one a
 * thread created by the main thread would inherit (the pool's supervisor thread creates it).
 * Read from /proc/PID/task/TID/stat. Negative control: a plane not told about the lowering (the
 * main thread lowered behind its back) restarts its worker at the main thread's nice value.
 * The main thread's nice only goes up, so the tests run in this order in their own process.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { startWorkerPlane, type WorkerPlane, type WorkerPlaneOptions } from '../../src/server/index.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { silentLogger } from '../../src/shared/logger.js';
import { onDemandAvailable } from '../../src/server/workers/reuseport.js';
import { skipUnless } from '../helpers/prereq.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { waitFor } from '../helpers/wait.js';

const k: RuntimeKey = {
  id: 'nice',
  method: 'chacha20-ietf-poly1305',
  secret: `nice-${randomBytes(4).toString('hex')}`,
};

/** A thread's nice value (field 19 of its stat line). */
function nice(tid: number): number {
  return Number(readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
}

async function plane(extra: Partial<WorkerPlaneOptions>): Promise<WorkerPlane> {
  return startWorkerPlane({
    workers: 2,
    keys: [k],
    port: 0,
    host: '127.0.0.1',
    logger: silentLogger,
    allowPrivateDestinations: true,
    reportMs: 50,
    testHooks: true,
    restart: { backoffMs: 20 },
    ...extra,
  });
}

async function ping(p: WorkerPlane, echo: TestServer): Promise<void> {
  const t = await openTestTunnel({
    port: p.address.port,
    method: k.method,
    password: k.secret,
    target: { host: '127.0.0.1', port: echo.port },
    initial: Buffer.from('ping'),
  });
  assert.equal((await t.read(4, 20_000)).toString(), 'ping');
  t.destroy();
}

/** Crash worker 1 and wait for its restart: the restarted thread's id. */
async function crashAndRestart(p: WorkerPlane): Promise<number> {
  const before = p.workerStats()[1]!;
  p.crashWorker!(1);
  await waitFor(
    () => {
      const w = p.workerStats()[1]!;
      return (w.restarts === before.restarts + 1 && w.tid !== before.tid) || undefined;
    },
    { timeoutMs: 20_000, message: 'worker 1 restarted' },
  );
  return p.workerStats()[1]!.tid!;
}

describe(
  'data-plane worker priority',
  {
    skip:
      skipUnless(process.platform === 'linux', 'Linux (per-thread nice values)') ||
      skipUnless(onDemandAvailable(), 'the native addon (node scripts/build-native.mjs)') ||
      skipUnless(getPriority() <= 9, 'a nice value that can be raised by 10'),
  },
  () => {
    test('on-demand start and a crash restart: workers at the base priority, management +5', async (t) => {
      const echo = await startEcho();
      const base = getPriority();
      const p = await plane({ lowerPriority: () => setPriority(getPriority() + 5) });
      t.after(async () => {
        await p.close();
        await echo.close();
      });
      assert.equal(nice(process.pid), base, 'nothing lowered before the workers run');
      await ping(p, echo);
      await waitFor(() => p.started || undefined, { timeoutMs: 10_000, message: 'started' });
      assert.equal(nice(process.pid), base + 5, 'the management thread is lowered once they run');
      for (const w of p.workerStats()) assert.equal(nice(w.tid!), base, `worker thread ${w.tid}`);
      const tid = await crashAndRestart(p);
      assert.equal(nice(tid), base, 'the restarted worker runs at the workers priority');
      await ping(p, echo);
    });

    test('negative control: lowered behind the pool, a restarted worker inherits the lower priority', async (t) => {
      const echo = await startEcho();
      const p = await plane({});
      t.after(async () => {
        await p.close();
        await echo.close();
      });
      await ping(p, echo);
      await waitFor(() => p.started || undefined, { timeoutMs: 10_000, message: 'started' });
      const workers = getPriority();
      setPriority(workers + 5);
      assert.equal(nice(p.workerStats()[0]!.tid!), workers);
      const tid = await crashAndRestart(p);
      assert.equal(nice(tid), workers + 5, 'created by the lowered thread');
    });
  },
);
