/**
 * A data-plane worker that crashes is restarted (src/server/workers/pool.ts): the other worker's
 * tunnels carry on, the crashed one's are gone, and the restarted worker (a new SO_REUSEPORT
 * socket on the same port, the current keys) takes new connections again; the log and the
 * crash hook say what happened, without any address. Negative control: with restarts off the
 * crashed worker's share of the port is gone (every new connection lands on the survivor).
 * Past the restart budget the pool gives up with one line.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { startWorkerPlane, type WorkerPlane, type WorkerPlaneOptions } from '../../src/server/index.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { createLogger } from '../../src/shared/logger.js';
import { reusePortAvailable } from '../../src/server/workers/reuseport.js';
import { throwSite } from '../../src/server/workers/handle.js';
import { skipUnless } from '../helpers/prereq.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { openTestTunnel, type TestTunnel } from '../helpers/test-client.js';
import { waitFor } from '../helpers/wait.js';

const METHOD = 'chacha20-ietf-poly1305';
const key = (id: string): RuntimeKey => ({
  id,
  method: METHOD,
  secret: `restart-${id}-${randomBytes(4).toString('hex')}`,
});

interface Rig {
  p: WorkerPlane;
  echo: TestServer;
  log: () => string[];
  crashes: { worker: number; lostConnections: number }[];
  /** The worker that authenticated each key's connections. */
  workerOf: Map<string, number>;
  gaveUp: string[];
}

async function rig(
  t: { after: (fn: () => Promise<void>) => void },
  extra: Partial<WorkerPlaneOptions>,
): Promise<Rig> {
  const echo = await startEcho();
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString()));
  const crashes: Rig['crashes'] = [];
  const workerOf = new Map<string, number>();
  const gaveUp: string[] = [];
  const p = await startWorkerPlane({
    workers: 2,
    keys: [],
    port: 0,
    host: '127.0.0.1',
    logger: createLogger({ level: 'info', destination: out }),
    logLevel: 'silent',
    allowPrivateDestinations: true,
    reportMs: 50,
    testHooks: true,
    hooks: { onWorkerCrashed: (e) => void crashes.push({ ...e }) },
    onWorkerEvents: (w, m) => {
      for (const a of m.authenticated) workerOf.set(a.keyId, w);
    },
    onGiveUp: (reason) => void gaveUp.push(reason),
    ...extra,
  });
  t.after(async () => {
    await p.close();
    await echo.close();
  });
  return { p, echo, log: () => text.split('\n').filter(Boolean), crashes, workerOf, gaveUp };
}

/** A tunnel with key `k` to the echo origin, one echo done. */
async function pinged(r: Rig, k: RuntimeKey): Promise<TestTunnel> {
  const t = await openTestTunnel({
    port: r.p.address.port,
    method: k.method,
    password: k.secret,
    target: { host: '127.0.0.1', port: r.echo.port },
    initial: Buffer.from('ping'),
  });
  assert.equal((await t.read(4, 10_000)).toString(), 'ping');
  return t;
}

/** A tunnel with a key of its own, so the worker that took it is known; one echo done. */
async function tunnel(r: Rig, id: string): Promise<{ t: TestTunnel; worker: number; seen: number }> {
  const k = key(id);
  await r.p.applyKeyDelta({ upsert: [k], remove: [] });
  const t = await pinged(r, k);
  const at = await waitFor(() => (r.workerOf.has(id) ? { w: r.workerOf.get(id)! } : undefined), {
    message: `the worker of ${id}`,
  });
  return { t, worker: at.w, seen: 4 };
}

/** Tunnels on new connections until both workers hold some (bounded: 40, each a fresh source port). */
async function spread(r: Rig, tag: string): Promise<Awaited<ReturnType<typeof tunnel>>[]> {
  const ts = [];
  for (let i = 0; i < 40; i++) {
    ts.push(await tunnel(r, `${tag}${i}`));
    if (ts.some((x) => x.worker === 0) && ts.some((x) => x.worker === 1) && ts.length >= 4) break;
  }
  return ts;
}

const echoes = async (x: { t: TestTunnel; seen: number }): Promise<boolean> => {
  try {
    x.t.send(Buffer.from('more'));
    x.seen += 4;
    await x.t.read(x.seen, 3000);
    return true;
  } catch {
    return false;
  }
};

const NEED = 'the native addon with SO_REUSEPORT sockets (node scripts/build-native.mjs)';

describe('a crashed data-plane worker', { skip: skipUnless(reusePortAvailable(), NEED) }, () => {
  test('is restarted: the other worker keeps its tunnels, new connections reach it again', async (t) => {
    const r = await rig(t, { restart: { backoffMs: 50 } });
    const before = await spread(r, 'a');
    const onOne = before.filter((x) => x.worker === 1);
    const onZero = before.filter((x) => x.worker === 0);
    assert.ok(onOne.length > 0 && onZero.length > 0, 'tunnels on both workers');
    // A key added after start: the restarted worker must get it with the current key set.
    const late = key('late');
    await r.p.applyKeyDelta({ upsert: [late], remove: [] });

    r.p.crashWorker!(1);
    await waitFor(() => r.p.workerStats()[1]!.restarts === 1, { timeoutMs: 20_000, message: 'restart' });
    for (const x of onZero) assert.ok(await echoes(x), 'a tunnel on the surviving worker still echoes');
    for (const x of onOne) assert.equal(await echoes(x), false, "the crashed worker's tunnel is gone");
    assert.deepEqual(r.crashes, [{ worker: 1, lostConnections: onOne.length }]);

    // New connections: on both workers again (the restarted one has a socket on the port), and
    // the key added before the crash works on the restarted worker.
    r.workerOf.clear();
    const after = await spread(r, 'b');
    assert.ok(
      after.some((x) => x.worker === 1),
      'the restarted worker takes new connections',
    );
    let lateOnOne = false;
    for (let i = 0; i < 40 && !lateOnOne; i++) {
      (await pinged(r, late)).destroy();
      await waitFor(() => r.workerOf.has('late') || undefined, { message: 'late key authenticated' });
      lateOnOne = r.workerOf.get('late') === 1;
      r.workerOf.delete('late');
    }
    assert.ok(lateOnOne, 'a key added before the crash authenticates on the restarted worker');
    for (const x of [...before, ...after]) x.t.destroy();

    const lines = r.log();
    const crashLine = lines.find((l) => l.includes('stopped unexpectedly; restarting it'));
    assert.ok(crashLine, lines.join('\n'));
    assert.match(crashLine, /"worker":1/);
    assert.match(crashLine, /"error":"Error at Immediate\.<anonymous> \(data-plane\.worker\.[jt]s:\d+\)"/);
    assert.ok(lines.some((l) => /"restarts":1.*data-plane worker restarted/.test(l)));
    // No address, no port of a destination, not even the test's error message (debug only).
    for (const l of lines) {
      assert.doesNotMatch(l, /127\.0\.0\.1|crash requested/, l);
      assert.ok(!l.includes(String(r.echo.port)), l);
    }
  });

  test('negative control: with restarts off, the crashed worker stays down and its share is gone', async (t) => {
    const r = await rig(t, { restart: false });
    await spread(r, 'a').then((ts) => ts.forEach((x) => x.t.destroy()));
    r.p.crashWorker!(1);
    await waitFor(() => r.crashes.length === 1 || undefined, { timeoutMs: 10_000 });
    r.workerOf.clear();
    const ts: Awaited<ReturnType<typeof tunnel>>[] = [];
    for (let i = 0; i < 16; i++) ts.push(await tunnel(r, `c${i}`));
    for (const x of ts) x.t.destroy();
    assert.deepEqual(new Set(ts.map((x) => x.worker)), new Set([0]), 'every new connection on worker 0');
    assert.equal(r.p.workerStats()[1]!.restarts, 0);
    assert.ok(r.log().some((l) => l.includes('not restarted')));
  });

  test('a worker that keeps crashing: past the budget the pool gives up with one line', async (t) => {
    const r = await rig(t, { restart: { backoffMs: 20, maxPerMinute: 1 }, startAtBoot: true });
    r.p.crashWorker!(1);
    await waitFor(() => r.p.workerStats()[1]!.restarts === 1, { timeoutMs: 20_000, message: 'restart' });
    r.p.crashWorker!(1);
    await waitFor(() => r.gaveUp.length === 1 || undefined, { timeoutMs: 10_000, message: 'give up' });
    assert.equal(r.gaveUp.length, 1);
    assert.doesNotMatch(r.gaveUp[0]!, /\n/);
    assert.match(
      r.gaveUp[0]!,
      // Where it was thrown (it said only "Error"); never the message, which may name a destination.
      /^data-plane worker 1 stopped unexpectedly \(Error at .*\(data-plane\.worker\.[jt]s:\d+\)\) after 1 restarts within a minute; stopping the server/,
    );
    assert.equal(r.p.workerStats()[1]!.restarts, 1, 'no third start');
  });
});

test('throwSite: the first frame outside Node, as fn (file:line), base name only', () => {
  const stack = [
    'TypeError: cannot read 10.1.2.3:443',
    '    at process.processImmediate (node:internal/timers:478:21)',
    '    at relayConnect (file:///srv/ladder/dist/chunks/chunk-AB12.js:812:9)',
    '    at Server.x (/srv/ladder/src/server/a.ts:1:1)',
  ].join('\n');
  assert.equal(throwSite(stack), 'relayConnect (chunk-AB12.js:812)');
  assert.equal(throwSite('Error: x\n    at /srv/ladder/src/server/a.ts:7:2'), 'a.ts:7');
  assert.equal(throwSite('Error: x\n    at node:internal/x:1:1'), undefined);
  assert.equal(throwSite(undefined), undefined);
});
